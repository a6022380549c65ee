// Whether the LAN's gateway offers port mapping (UPnP IGD, NAT-PMP, PCP), reported to control in NetInfo as
// tailscaled reports it. Trellis maps no ports; it only asks, the way tailscaled's portmapper probe does: a PMP
// external-address request and a PCP announce to the gateway's port 5351, and an SSDP search for an IGD. The
// gateway is read from the routing table (Linux); without one to ask (or elsewhere) all three are false, as
// tailscaled reports when its probe cannot find a gateway.
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';

export interface PortMapProbe {
  upnp: boolean;
  pmp: boolean;
  pcp: boolean;
}

const PMP_PORT = 5351;
const SSDP = { address: '239.255.255.250', port: 1900 };
const PROBE_MS = 500;

const PMP_EXTERNAL_ADDRESS = Uint8Array.of(0, 0);
const SSDP_SEARCH = Buffer.from(
  'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n' +
    'MAN: "ssdp:discover"\r\nMX: 2\r\n\r\n',
);

/** A PCP ANNOUNCE request (RFC 6887 §14.1): version 2, opcode 0, no lifetime, our address as IPv4-mapped IPv6. */
export function pcpAnnounce(ourV4: string): Uint8Array {
  const b = new Uint8Array(24);
  b[0] = 2;
  b[18] = 0xff;
  b[19] = 0xff;
  ourV4.split('.').forEach((o, i) => {
    b[20 + i] = Number(o) & 0xff;
  });
  return b;
}

/** What one answer from the gateway says. */
export function classifyAnswer(msg: Uint8Array, fromPort: number): keyof PortMapProbe | undefined {
  if (fromPort === PMP_PORT && msg.length >= 4) {
    const result = (msg[2] << 8) | msg[3];
    if (msg[0] === 0 && msg[1] === 128 && result === 0) return 'pmp';
    if (msg[0] === 2 && msg[1] === 0x80 && msg[3] === 0) return 'pcp'; // PCP: result code in byte 3
    return undefined;
  }
  const text = Buffer.from(msg.subarray(0, 512)).toString('latin1');
  if (/^HTTP\/1\.1 200/i.test(text) && /\r\nlocation:/i.test(text)) return 'upnp';
  return undefined;
}

/** The IPv4 default gateway and the source address toward it, from /proc/net/route (Linux only). */
export async function defaultGatewayV4(): Promise<string | undefined> {
  if (process.platform !== 'linux') return undefined;
  let table: string;
  try {
    table = await readFile('/proc/net/route', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] !== '00000000' || f[7] !== '00000000') continue;
    const g = Number.parseInt(f[2], 16);
    if (!g) continue;
    return [g & 0xff, (g >>> 8) & 0xff, (g >>> 16) & 0xff, g >>> 24].join('.');
  }
  return undefined;
}

export interface ProbeTargets {
  gateway: string;
  /** The gateway's NAT-PMP/PCP port (5351). */
  pmpPort: number;
  /** Where the SSDP search goes (the UPnP multicast group). */
  ssdp: { address: string; port: number };
  waitMs: number;
}

/** Asks the gateway; resolves within waitMs (+ socket setup) with what answered (all false without a gateway). */
export async function probePortMapping(targets: Partial<ProbeTargets> = {}): Promise<PortMapProbe> {
  const found: PortMapProbe = { upnp: false, pmp: false, pcp: false };
  const gw = targets.gateway ?? (await defaultGatewayV4());
  if (!gw) return found;
  const pmpPort = targets.pmpPort ?? PMP_PORT;
  const ssdp = targets.ssdp ?? SSDP;
  const sock = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', () => {}); // an unreachable gateway is simply "no"
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address !== gw) return;
      const kind = classifyAnswer(msg, rinfo.port === pmpPort ? PMP_PORT : rinfo.port);
      if (kind) found[kind] = true;
    });
    sock.connect(pmpPort, gw);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const ours = sock.address().address;
    sock.disconnect();
    sock.send(PMP_EXTERNAL_ADDRESS, pmpPort, gw);
    sock.send(pcpAnnounce(ours), pmpPort, gw);
    sock.send(SSDP_SEARCH, ssdp.port, ssdp.address);
    await new Promise((r) => setTimeout(r, targets.waitMs ?? PROBE_MS));
    return found;
  } catch {
    return found;
  } finally {
    sock.close();
  }
}
