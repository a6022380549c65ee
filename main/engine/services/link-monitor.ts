// Noticing that this machine's networks changed — an address came or went: another Wi-Fi, a cable, a docking
// station — as tailscaled's netmon does, so what depends on the LANs follows at once: the exit node's allow-LAN
// exceptions and LAN-source rules, and the endpoints control tells peers. Without it they would wait for the next
// routing change or netcheck. Polls the interfaces' addresses (getifaddrs, cheap), which works on every OS.
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';

/** How often the addresses are compared. */
export const LINK_POLL_MS = 2_000;

type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

/** The addresses of every interface but loopback and our TUN, as one text that changes when any of them does. */
export function linkKey(interfaces: Interfaces, tunName: string): string {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(interfaces)) {
    if (name === tunName) continue;
    for (const a of addrs ?? []) if (!a.internal) out.push(`${name} ${a.cidr ?? a.address}`);
  }
  return out.sort().join('\n');
}

export class LinkMonitor {
  private key = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tunName: string,
    /** Called once per change seen (not for the state at start). */
    private readonly onChange: () => void,
    private readonly read: () => Interfaces = networkInterfaces,
    private readonly intervalMs = LINK_POLL_MS,
  ) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Starts watching from the addresses there are now; a second start changes nothing. */
  start(): void {
    if (this.timer) return;
    this.key = linkKey(this.read(), this.tunName);
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref?.();
  }

  /** Compares now (the timer calls this; a test may too). */
  poll(): void {
    const key = linkKey(this.read(), this.tunName);
    if (key === this.key) return;
    this.key = key;
    this.onChange();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
