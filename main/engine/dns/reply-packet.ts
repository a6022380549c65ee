// Quad-100's UDP answer as an IP packet, built straight from the query packet's bytes: addresses swapped, ports
// swapped, checksums filled. The same bytes buildIpPacket(udpDatagram(...)) gives, without formatting the
// client's address to text and parsing it back for every query.
import { internetChecksum, sum16 } from '../packet/checksum.ts';
import { IPPROTO } from '../packet/parse.ts';

const TTL = 64;

/**
 * The IP packet carrying dns from the query's destination (quad-100) back to its source and port. query holds at
 * least the query's fixed IP header (its addresses).
 */
export function udpReplyPacket(query: Uint8Array, version: number, clientPort: number, dns: Uint8Array): Uint8Array {
  const v4 = version === 4;
  // Address offsets are fixed in both headers, whatever IPv4 options or IPv6 extension headers follow them.
  const [srcAt, dstAt, alen, hlen] = v4 ? [12, 16, 4, 20] : [8, 24, 16, 40];
  const udpLen = 8 + dns.length;
  const out = new Uint8Array(hlen + udpLen);
  out.set(query.subarray(dstAt, dstAt + alen), srcAt); // from quad-100 ...
  out.set(query.subarray(srcAt, srcAt + alen), dstAt); // ... to the asker
  if (v4) {
    out[0] = 0x45;
    out[2] = out.length >> 8;
    out[3] = out.length & 0xff;
    out[8] = TTL;
    out[9] = IPPROTO.UDP;
    const c = internetChecksum(out.subarray(0, 20));
    out[10] = c >> 8;
    out[11] = c & 0xff;
  } else {
    out[0] = 0x60;
    out[4] = udpLen >> 8;
    out[5] = udpLen & 0xff;
    out[6] = IPPROTO.UDP;
    out[7] = TTL;
  }
  const u = hlen;
  out[u] = 0;
  out[u + 1] = 53;
  out[u + 2] = clientPort >> 8;
  out[u + 3] = clientPort & 0xff;
  out[u + 4] = udpLen >> 8;
  out[u + 5] = udpLen & 0xff;
  out.set(dns, u + 8);
  const pseudo = sum16(out, srcAt, dstAt + alen) + IPPROTO.UDP + udpLen;
  let c = internetChecksum(out.subarray(u), pseudo);
  if (c === 0) c = 0xffff; // zero means "no checksum" in UDP
  out[u + 6] = c >> 8;
  out[u + 7] = c & 0xff;
  return out;
}
