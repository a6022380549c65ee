// Userspace networking's packet port: what comes in from the tailnet (through the filter) goes to the engine's
// own TCP/IP stack, and what the stack sends goes out the way a TUN read would (quad-100, filter, WireGuard).
// Packets the stack sends outside an inbound batch (a proxy's write, a timer) are flushed to the network once per
// turn of the event loop, as the end of a batch does. A packet written while the stack is sending (quad-100
// answers a query at once) waits for a microtask: the stack is never entered from inside itself.
import { NetStack } from '../netstack/index.ts';
import type { PacketPort } from './packet-port.ts';

/** Tailnet addresses as the stack wants them: no prefix length. */
function bare(addresses: readonly string[]): string[] {
  return addresses.map((a) => a.split('/')[0] ?? a);
}

/** 100.64.0.0/10 or fd7a:115c:a1e0::/48, as address bytes. */
export function inTailnetRanges(b: Uint8Array): boolean {
  if (b.length === 4) return b[0] === 100 && (b[1] & 0xc0) === 64;
  return b[0] === 0xfd && b[1] === 0x7a && b[2] === 0x11 && b[3] === 0x5c && b[4] === 0xa1 && b[5] === 0xe0;
}

export class NetstackPort implements PacketPort {
  readonly stack: NetStack;
  private flushQueued = false;
  private sending = 0;
  private readonly later: Uint8Array[] = [];

  constructor(
    addresses: readonly string[],
    /** One IP packet the stack sent, toward the tailnet. */
    toTailnet: (pkt: Uint8Array) => void,
    /** Sends what toTailnet queued (and quad-100's answers back into the stack). */
    private readonly flushTailnet: () => void,
  ) {
    this.stack = new NetStack({
      addresses: bare(addresses),
      // The packet goes through sendFromTun at once (sealed into a message, or copied when staged or answered
      // by quad-100), and writes from inside it wait (write()): the stack may reuse its output buffer.
      outputCopies: true,
      output: (pkt) => {
        this.sending++;
        try {
          toTailnet(pkt);
        } finally {
          this.sending--;
        }
        this.queueFlush();
      },
    });
  }

  setAddresses(addresses: readonly string[]): void {
    this.stack.setAddresses(bare(addresses));
  }

  write(pkt: Uint8Array): void {
    if (this.sending === 0) {
      this.stack.deliver(pkt);
      return;
    }
    if (this.later.push(pkt.slice()) === 1) queueMicrotask(() => this.deliverLater());
  }

  private deliverLater(): void {
    for (const pkt of this.later.splice(0)) this.stack.deliver(pkt);
  }

  flush(): void {}

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flushTailnet();
    });
  }

  close(): void {
    this.stack.close();
  }
}
