// TSMP, Tailscale's in-tunnel message protocol (IP protocol 99; docs/protocol/services.md §4.11.6). tailscaled answers a TSMP
// ping ('p' + 8 bytes) with a pong ('o', the 8 bytes, our PeerAPI port as BE16) from the address it was sent to,
// before and whatever the packet filter says, and hands no TSMP packet to the OS: the kernel knows no protocol 99
// and would answer "protocol unreachable". `tailscale ping --tsmp` is this exchange.
import { internetChecksum } from './checksum.ts';
import { IPPROTO, type PacketInfo } from './parse.ts';

export const TSMP_PING = 0x70; // 'p'
export const TSMP_PONG = 0x6f; // 'o'
const PING_DATA_BYTES = 8;

/**
 * The pong for pkt when it is a whole TSMP ping (p parsed from pkt), or undefined. The pong swaps the addresses,
 * flips the IPv4 identification (or IPv6 flow label) as tailscaled does, and carries peerApiPort (0 = none).
 */
export function tsmpPong(pkt: Uint8Array, p: PacketInfo, peerApiPort: number): Uint8Array | undefined {
  if (p.status !== 'ok' || p.proto !== IPPROTO.TSMP || p.fragment || p.moreFragments) return undefined;
  const at = p.transportOffset;
  if (p.transportLength < 1 + PING_DATA_BYTES || pkt[at] !== TSMP_PING) return undefined;
  const body = new Uint8Array(1 + PING_DATA_BYTES + 2);
  body[0] = TSMP_PONG;
  body.set(pkt.subarray(at + 1, at + 1 + PING_DATA_BYTES), 1);
  body[9] = (peerApiPort >> 8) & 0xff;
  body[10] = peerApiPort & 0xff;
  if (p.version === 4) {
    const out = new Uint8Array(20 + body.length);
    const v = new DataView(out.buffer);
    out[0] = 0x45;
    v.setUint16(2, out.length);
    v.setUint16(4, ~((pkt[4] << 8) | pkt[5]) & 0xffff);
    out[8] = 64;
    out[9] = IPPROTO.TSMP;
    out.set(pkt.subarray(16, 20), 12); // source: the address the ping was sent to
    out.set(pkt.subarray(12, 16), 16);
    v.setUint16(10, internetChecksum(out.subarray(0, 20)));
    out.set(body, 20);
    return out;
  }
  if (p.version !== 6) return undefined;
  const out = new Uint8Array(40 + body.length);
  const v = new DataView(out.buffer);
  const flow = ~(((pkt[1] & 0x0f) << 16) | (pkt[2] << 8) | pkt[3]) & 0x000fffff;
  v.setUint32(0, (6 << 28) | flow);
  v.setUint16(4, body.length);
  out[6] = IPPROTO.TSMP;
  out[7] = 64;
  out.set(pkt.subarray(24, 40), 8);
  out.set(pkt.subarray(8, 24), 24);
  out.set(body, 40);
  return out;
}

export const TSMP_REJECT = 0x21; // '!'
/** Why a connection was refused: the ACLs ('A'); shields up would be 'S'. */
export const REJECT_ACL = 0x41;

/**
 * tailscaled's notice that an IPv4 TCP SYN from a peer was dropped by the packet filter: from the address the SYN
 * went to, '!', the protocol, the reason, the SYN's source and destination ports. The peer's tailscaled then logs
 * the refused connection instead of waiting for it to time out. undefined for anything but an IPv4 TCP SYN.
 */
export function tsmpReject(pkt: Uint8Array, p: PacketInfo, reason = REJECT_ACL): Uint8Array | undefined {
  if (p.status !== 'ok' || p.version !== 4 || p.proto !== IPPROTO.TCP || p.fragment) return undefined;
  if ((p.tcpFlags & 0x02) === 0) return undefined; // SYN (tailscaled does not look at ACK)
  const out = new Uint8Array(20 + 7);
  const v = new DataView(out.buffer);
  out[0] = 0x45;
  v.setUint16(2, out.length);
  out[8] = 64;
  out[9] = IPPROTO.TSMP;
  out.set(pkt.subarray(16, 20), 12);
  out.set(pkt.subarray(12, 16), 16);
  v.setUint16(10, internetChecksum(out.subarray(0, 20)));
  out[20] = TSMP_REJECT;
  out[21] = IPPROTO.TCP;
  out[22] = reason;
  v.setUint16(23, p.srcPort);
  v.setUint16(25, p.dstPort);
  return out;
}
