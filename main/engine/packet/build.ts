// Builders for small IPv4/IPv6 packets with TCP/UDP/ICMP payloads and correct checksums: for synthesised
// replies (TSMP, local answers) and for tests. Not a hot path; allocates freely.
import { internetChecksum, sum16 } from './checksum.ts';
import { parseAddress } from './ip.ts';
import { IPPROTO } from './parse.ts';

/** An IPv6 extension header: options-style (0, 43, 60) with a raw body, or a fragment header (44). */
export type Ipv6Extension =
  | { type: 0 | 43 | 60; body?: Uint8Array }
  | { type: 44; fragOffset: number; more: boolean; id?: number };

export interface IpPacketOptions {
  src: string;
  dst: string;
  /** Upper-layer protocol of `transport`. */
  proto: number;
  ttl?: number;
  /** IPv4 identification. */
  id?: number;
  /** IPv4 fragmentation: offset in bytes (a multiple of 8) and the MF flag. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** IPv4 options (padded to 4 bytes). */
  options?: Uint8Array;
  /** IPv6 extension headers, in order, before the upper layer. */
  ext?: readonly Ipv6Extension[];
  /** Fill in the transport checksum (TCP, UDP, ICMP, ICMPv6) when the transport is whole. Default true. */
  checksum?: boolean;
}

export function tcpSegment(
  srcPort: number,
  dstPort: number,
  flags: number,
  payload: Uint8Array = new Uint8Array(0),
  seq = 0,
  ack = 0,
): Uint8Array {
  const out = new Uint8Array(20 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint32(4, seq >>> 0);
  v.setUint32(8, ack >>> 0);
  out[12] = 5 << 4;
  out[13] = flags;
  v.setUint16(14, 65535);
  out.set(payload, 20);
  return out;
}

export function udpDatagram(srcPort: number, dstPort: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint16(4, out.length);
  out.set(payload, 8);
  return out;
}

/** An ICMP/ICMPv6 message: type, code, checksum, then `rest` (e.g. identifier + sequence + data). */
export function icmpMessage(type: number, code: number, rest: Uint8Array = new Uint8Array(4)): Uint8Array {
  const out = new Uint8Array(4 + rest.length);
  out[0] = type;
  out[1] = code;
  out.set(rest, 4);
  return out;
}

const CHECKSUM_AT: Record<number, number> = {
  [IPPROTO.TCP]: 16,
  [IPPROTO.UDP]: 6,
  [IPPROTO.ICMP]: 2,
  [IPPROTO.ICMPV6]: 2,
};

function fillChecksum(t: Uint8Array, proto: number, src: Uint8Array, dst: Uint8Array): void {
  const at = CHECKSUM_AT[proto];
  if (at === undefined || t.length < at + 2) return;
  t[at] = t[at + 1] = 0;
  let pseudo = 0;
  if (!(proto === IPPROTO.ICMP && src.length === 4)) {
    pseudo = sum16(src) + sum16(dst) + proto + (t.length & 0xffff) + Math.floor(t.length / 0x10000);
  }
  let c = internetChecksum(t, pseudo);
  if (proto === IPPROTO.UDP && c === 0) c = 0xffff;
  t[at] = c >> 8;
  t[at + 1] = c & 0xff;
}

function extensionBytes(ext: readonly Ipv6Extension[], proto: number): { first: number; bytes: Uint8Array } {
  const parts: Uint8Array[] = [];
  ext.forEach((e, i) => {
    const next = i + 1 < ext.length ? ext[i + 1].type : proto;
    if (e.type === 44) {
      const h = new Uint8Array(8);
      h[0] = next;
      const field = (e.fragOffset & 0xfff8) | (e.more ? 1 : 0);
      h[2] = field >> 8;
      h[3] = field & 0xff;
      new DataView(h.buffer).setUint32(4, e.id ?? 1);
      parts.push(h);
    } else {
      const body = e.body ?? new Uint8Array(6);
      const len = Math.ceil((body.length + 2) / 8) * 8;
      const h = new Uint8Array(len);
      h[0] = next;
      h[1] = len / 8 - 1;
      h.set(body, 2);
      parts.push(h);
    }
  });
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  return { first: ext.length ? ext[0].type : proto, bytes };
}

/** An IPv4 or IPv6 packet (by the address family of `src`) around `transport`. */
export function buildIpPacket(o: IpPacketOptions, transport: Uint8Array): Uint8Array {
  const src = parseAddress(o.src);
  const dst = parseAddress(o.dst);
  if (src.length !== dst.length) throw new RangeError('source and destination families differ');
  const t = Uint8Array.from(transport);
  const whole = !o.moreFragments && !o.fragOffset && !(o.ext ?? []).some((e) => e.type === 44 && e.more);
  if (o.checksum !== false && whole) fillChecksum(t, o.proto, src, dst);
  if (src.length === 4) {
    const opts = o.options ?? new Uint8Array(0);
    const ihl = 20 + Math.ceil(opts.length / 4) * 4;
    const out = new Uint8Array(ihl + t.length);
    const v = new DataView(out.buffer);
    out[0] = 0x40 | (ihl >> 2);
    v.setUint16(2, out.length);
    v.setUint16(4, o.id ?? 0);
    v.setUint16(6, ((o.fragOffset ?? 0) >> 3) | (o.moreFragments ? 0x2000 : 0));
    out[8] = o.ttl ?? 64;
    out[9] = o.proto;
    out.set(src, 12);
    out.set(dst, 16);
    out.set(opts, 20);
    v.setUint16(10, internetChecksum(out.subarray(0, ihl)));
    out.set(t, ihl);
    return out;
  }
  const { first, bytes } = extensionBytes(o.ext ?? [], o.proto);
  const out = new Uint8Array(40 + bytes.length + t.length);
  const v = new DataView(out.buffer);
  out[0] = 0x60;
  v.setUint16(4, bytes.length + t.length);
  out[6] = first;
  out[7] = o.ttl ?? 64;
  out.set(src, 8);
  out.set(dst, 24);
  out.set(bytes, 40);
  out.set(t, 40 + bytes.length);
  return out;
}
