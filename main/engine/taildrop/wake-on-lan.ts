// Wake-on-LAN for the PeerAPI's /v0/wol: a magic packet (6 × 0xff, then the MAC 16 times) broadcast once from each
// LAN interface's first IPv4 address, as tailscaled sends it. The tailnet's own addresses are skipped: no machine
// asleep on a LAN listens there. tailscaled sends to port 0, which Node cannot address; the NIC reads only the
// payload, so port 9 (discard, the usual WoL port) reaches it the same.
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';

export const WOL_PORT = 9;
const SEND_TIMEOUT_MS = 2_000;

export interface WakeResult {
  /** Interfaces the packet went out on, sorted; null when none (tailscaled's JSON of an empty list). */
  SentTo: string[] | null;
  Errors: string[] | null;
}

/** The magic packet for a 6-byte MAC. */
export function magicPacket(mac: Uint8Array): Uint8Array {
  if (mac.length !== 6) throw new RangeError('a Wake-on-LAN MAC address has 6 bytes');
  const out = new Uint8Array(6 + 16 * 6).fill(0xff);
  for (let i = 0; i < 16; i++) out.set(mac, 6 + i * 6);
  return out;
}

const inTailnetRange = (ip: string): boolean => {
  const [a = 0, b = 0] = ip.split('.').map(Number);
  return a === 100 && b >= 64 && b < 128;
};

/** Broadcasts the magic packet for mac on every LAN interface; which ones took it and what failed. */
export async function sendWakeOnLan(mac: Uint8Array): Promise<WakeResult> {
  const packet = magicPacket(mac);
  const sentTo: string[] = [];
  const errors: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const a = (addrs ?? []).find((x) => x.family === 'IPv4' && !x.internal && !inTailnetRange(x.address));
    if (!a) continue;
    try {
      await broadcastFrom(a.address, packet);
      sentTo.push(name);
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
    }
  }
  sentTo.sort();
  return { SentTo: sentTo.length ? sentTo : null, Errors: errors.length ? errors : null };
}

function broadcastFrom(address: string, packet: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => done(new Error('timed out sending the magic packet')), SEND_TIMEOUT_MS);
    const done = (e?: Error | null) => {
      clearTimeout(timer);
      sock.close();
      if (e) reject(e);
      else resolve();
    };
    sock.once('error', done);
    sock.bind({ address, port: 0 }, () => {
      try {
        sock.setBroadcast(true);
        sock.send(packet, WOL_PORT, '255.255.255.255', (e) => done(e));
      } catch (e) {
        done(e as Error);
      }
    });
  });
}
