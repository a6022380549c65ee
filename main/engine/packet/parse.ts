// Zero-copy IP packet parser for the data path: one reusable descriptor, no allocation, no throws.
// Addresses are kept as u32 words (IPv4 in word 0, IPv6 in words 0..3, big-endian order) so that the
// filter can match prefixes with integer masks. Hostile input yields status 'malformed', never an exception.

import { formatAddress } from './ip.ts';

export const IPPROTO = {
  HOPOPT: 0,
  ICMP: 1,
  IGMP: 2,
  TCP: 6,
  UDP: 17,
  IPV6_ROUTING: 43,
  IPV6_FRAGMENT: 44,
  ICMPV6: 58,
  IPV6_NONXT: 59,
  IPV6_DSTOPTS: 60,
  TSMP: 99,
  SCTP: 132,
  /** Reserved; Tailscale uses it internally for "fragment", so a packet claiming it is suspicious. */
  RESERVED: 255,
} as const;

export const TCP_FLAGS = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/**
 * RFC 1858: a first fragment must carry a full transport header, and a later fragment may not start
 * inside the first 80 bytes (60-byte IPv4 header + 20-byte TCP header) or it could rewrite ports/flags.
 */
export const MIN_FRAGMENT_OFFSET = 80;
/** Most IPv6 extension headers followed before giving up. */
export const MAX_IPV6_EXT_HEADERS = 8;

export type ParseStatus = 'ok' | 'empty' | 'malformed';

/** The parse result. Reuse one instance per data-path loop; parsePacket() resets every field. */
export class PacketInfo {
  status: ParseStatus = 'empty';
  /** Why the packet is malformed (a constant string, no allocation), '' otherwise. */
  error = '';
  version: 0 | 4 | 6 = 0;
  /** Upper-layer protocol after IPv6 extension headers (for a non-first fragment: the fragment's next header). */
  proto = 0;
  /** Source address words; IPv4 uses word 0 only (words 1..3 are 0). */
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  srcPort = 0;
  dstPort = 0;
  /** The TCP flags byte (valid when proto is TCP). */
  tcpFlags = 0;
  /** ICMP type/code for ICMPv4-in-IPv4 and ICMPv6-in-IPv6; -1 otherwise. */
  icmpType = -1;
  icmpCode = -1;
  /** True for a non-first fragment: it carries no transport header, so there are no ports. */
  fragment = false;
  /** The packet is a first fragment with more to follow. */
  moreFragments = false;
  /** Fragment offset in bytes (0 for unfragmented and first fragments). */
  fragmentOffset = 0;
  /** Total IP length from the header (trailing bytes beyond it are padding and ignored). */
  length = 0;
  /** Offset and length of the transport header + payload within the buffer. */
  transportOffset = 0;
  transportLength = 0;

  /** SYN set and ACK clear: the first segment of a new TCP connection. */
  get isTcpSyn(): boolean {
    return this.proto === IPPROTO.TCP && (this.tcpFlags & (TCP_FLAGS.SYN | TCP_FLAGS.ACK)) === TCP_FLAGS.SYN;
  }

  reset(): void {
    this.status = 'empty';
    this.error = '';
    this.version = 0;
    this.proto = 0;
    const s = this.src;
    const d = this.dst;
    s[0] = s[1] = s[2] = s[3] = 0;
    d[0] = d[1] = d[2] = d[3] = 0;
    this.srcPort = 0;
    this.dstPort = 0;
    this.tcpFlags = 0;
    this.icmpType = -1;
    this.icmpCode = -1;
    this.fragment = false;
    this.moreFragments = false;
    this.fragmentOffset = 0;
    this.length = 0;
    this.transportOffset = 0;
    this.transportLength = 0;
  }
}

function malformed(out: PacketInfo, why: string): PacketInfo {
  out.status = 'malformed';
  out.error = why;
  return out;
}

function word(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** Parses `buf` into `out` (a fresh descriptor when omitted). Never throws; never reads past `buf`. */
export function parsePacket(buf: Uint8Array, out: PacketInfo = new PacketInfo()): PacketInfo {
  out.reset();
  const n = buf.length;
  if (n === 0) return out; // a WireGuard keepalive: status 'empty'
  const v = buf[0] >> 4;
  if (v === 4) return parse4(buf, n, out);
  if (v === 6) return parse6(buf, n, out);
  return malformed(out, n < 20 ? 'short' : 'bad-version');
}

function parse4(buf: Uint8Array, n: number, out: PacketInfo): PacketInfo {
  out.version = 4;
  if (n < 20) return malformed(out, 'short');
  const ihl = (buf[0] & 0x0f) << 2;
  if (ihl < 20) return malformed(out, 'bad-ihl');
  const total = (buf[2] << 8) | buf[3];
  if (total < ihl) return malformed(out, 'bad-length');
  if (total > n) return malformed(out, 'truncated');
  out.length = total;
  out.src[0] = word(buf, 12);
  out.dst[0] = word(buf, 16);
  out.proto = buf[9];
  out.transportOffset = ihl;
  out.transportLength = total - ihl;
  const frag = (buf[6] << 8) | buf[7];
  const offset = (frag & 0x1fff) << 3;
  if (offset !== 0) return nonFirstFragment(out, offset);
  out.moreFragments = (frag & 0x2000) !== 0;
  return parseTransport(buf, ihl, total, out);
}

function parse6(buf: Uint8Array, n: number, out: PacketInfo): PacketInfo {
  out.version = 6;
  if (n < 40) return malformed(out, 'short');
  const total = 40 + ((buf[4] << 8) | buf[5]);
  if (total > n) return malformed(out, 'truncated');
  out.length = total;
  for (let i = 0; i < 4; i++) {
    out.src[i] = word(buf, 8 + 4 * i);
    out.dst[i] = word(buf, 24 + 4 * i);
  }
  let next = buf[6];
  let off = 40;
  // Bounded walk over the extension headers we understand; anything else is the upper layer.
  for (let i = 0; isExtensionHeader(next); i++) {
    if (i >= MAX_IPV6_EXT_HEADERS) return malformed(out, 'too-many-ext-headers');
    if (next === IPPROTO.HOPOPT && i !== 0) return malformed(out, 'misplaced-hop-by-hop');
    if (off + 8 > total) return malformed(out, 'truncated-ext-header');
    if (next === IPPROTO.IPV6_FRAGMENT) {
      const fragOffset = ((buf[off + 2] << 8) | buf[off + 3]) & 0xfff8;
      const more = (buf[off + 3] & 1) !== 0;
      next = buf[off];
      off += 8;
      if (fragOffset !== 0) {
        out.proto = next;
        out.transportOffset = off;
        out.transportLength = total - off;
        return nonFirstFragment(out, fragOffset);
      }
      out.moreFragments = more;
      continue;
    }
    const len = (buf[off + 1] + 1) << 3;
    if (off + len > total) return malformed(out, 'truncated-ext-header');
    next = buf[off];
    off += len;
  }
  out.proto = next;
  out.transportOffset = off;
  out.transportLength = total - off;
  return parseTransport(buf, off, total, out);
}

function isExtensionHeader(p: number): boolean {
  return (
    p === IPPROTO.HOPOPT || p === IPPROTO.IPV6_ROUTING || p === IPPROTO.IPV6_DSTOPTS || p === IPPROTO.IPV6_FRAGMENT
  );
}

function nonFirstFragment(out: PacketInfo, offset: number): PacketInfo {
  out.fragmentOffset = offset;
  if (offset < MIN_FRAGMENT_OFFSET) return malformed(out, 'tiny-fragment-offset');
  out.fragment = true;
  out.status = 'ok';
  return out;
}

function parseTransport(buf: Uint8Array, off: number, end: number, out: PacketInfo): PacketInfo {
  const avail = end - off;
  const proto = out.proto;
  if (proto === IPPROTO.HOPOPT || proto === IPPROTO.RESERVED) return malformed(out, 'reserved-protocol');
  if (out.moreFragments && avail < 8) return malformed(out, 'tiny-first-fragment');
  switch (proto) {
    case IPPROTO.TCP: {
      if (avail < 20) return malformed(out, 'short-tcp');
      const dataOffset = (buf[off + 12] >> 4) << 2;
      if (dataOffset < 20 || dataOffset > avail) return malformed(out, 'bad-tcp-offset');
      out.srcPort = (buf[off] << 8) | buf[off + 1];
      out.dstPort = (buf[off + 2] << 8) | buf[off + 3];
      out.tcpFlags = buf[off + 13];
      break;
    }
    case IPPROTO.UDP:
      if (avail < 8) return malformed(out, 'short-udp');
      out.srcPort = (buf[off] << 8) | buf[off + 1];
      out.dstPort = (buf[off + 2] << 8) | buf[off + 3];
      break;
    case IPPROTO.SCTP:
      if (avail < 12) return malformed(out, 'short-sctp');
      out.srcPort = (buf[off] << 8) | buf[off + 1];
      out.dstPort = (buf[off + 2] << 8) | buf[off + 3];
      break;
    case IPPROTO.ICMP:
    case IPPROTO.ICMPV6:
      // ICMPv4 only counts as ICMP inside IPv4, ICMPv6 only inside IPv6; the other pairing is "some protocol".
      if ((proto === IPPROTO.ICMP) !== (out.version === 4)) break;
      if (avail < 4) return malformed(out, 'short-icmp');
      out.icmpType = buf[off];
      out.icmpCode = buf[off + 1];
      break;
    default:
      break; // TSMP, IGMP and others: no header we need
  }
  out.status = 'ok';
  return out;
}

/** Formats the descriptor's source or destination address (for logs and tests; allocates). */
export function formatPacketAddress(p: PacketInfo, which: 'src' | 'dst'): string {
  const w = which === 'src' ? p.src : p.dst;
  if (p.version === 4) return `${w[0] >>> 24}.${(w[0] >>> 16) & 255}.${(w[0] >>> 8) & 255}.${w[0] & 255}`;
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = (w[i >> 2] >>> (24 - 8 * (i & 3))) & 255;
  return formatAddress(bytes);
}
