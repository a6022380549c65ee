// TCP segment codec for the stack: parse a segment out of an IP packet (checksum, data offset, options) and build
// one into a whole IP packet (IPv4 or IPv6 header, options, payload, both checksums) in a single allocation.
import { fold, sum16 } from '../packet/checksum.ts';
import { IPPROTO, TCP_FLAGS } from '../packet/parse.ts';

export { TCP_FLAGS };

export interface TcpOptions {
  /** Maximum segment size the sender will accept. */
  mss?: number;
  /** Window scale shift (RFC 7323), as sent (clamped to 14 by the connection). */
  wscale?: number;
  /** SACK permitted (RFC 2018). */
  sackOk?: boolean;
  /** SACK blocks [start, end) we hold beyond the cumulative ACK (at most 4 without timestamps). */
  sack?: [number, number][];
}

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  /** The raw 16-bit window field (unscaled). */
  window: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/** Sequence-space arithmetic modulo 2^32 (RFC 9293 §3.4). */
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
export const seqGe = (a: number, b: number): boolean => ((a - b) | 0) >= 0;
export const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
/** b - a as a signed distance. */
export const seqDiff = (b: number, a: number): number => (b - a) | 0;

function pseudoSum(src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  return sum16(src) + sum16(dst) + proto + (length & 0xffff) + Math.floor(length / 0x10000);
}

/** True when the transport checksum over `t` with the IP pseudo-header verifies. */
export function transportChecksumOk(t: Uint8Array, src: Uint8Array, dst: Uint8Array, proto: number): boolean {
  return fold(sum16(t, 0, t.length, pseudoSum(src, dst, proto, t.length))) === 0xffff;
}

const NO_OPTIONS: TcpOptions = Object.freeze({});

/** Parses a TCP segment (the transport bytes of a packet). Returns a reason string when it must be dropped. */
export function parseTcp(t: Uint8Array, src: Uint8Array, dst: Uint8Array): TcpSegment | string {
  if (t.length < 20) return 'short-tcp';
  const off = (t[12] >> 4) << 2;
  if (off < 20 || off > t.length) return 'bad-tcp-offset';
  if (!transportChecksumOk(t, src, dst, IPPROTO.TCP)) return 'bad-checksum';
  const flags = t[13];
  const { SYN, FIN, RST } = TCP_FLAGS;
  if ((flags & SYN && flags & (FIN | RST)) || (flags & RST && flags & FIN)) return 'bad-tcp-flags';
  // Most segments carry no options: they share one frozen empty set rather than allocate their own.
  const options: TcpOptions = off === 20 ? NO_OPTIONS : {};
  for (let i = 20; i < off; ) {
    const kind = t[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= off) return 'bad-tcp-option';
    const len = t[i + 1];
    if (len < 2 || i + len > off) return 'bad-tcp-option';
    if (kind === 2 && len === 4) options.mss = (t[i + 2] << 8) | t[i + 3];
    else if (kind === 3 && len === 3) options.wscale = t[i + 2];
    else if (kind === 4 && len === 2) options.sackOk = true;
    else if (kind === 5 && len >= 10 && (len - 2) % 8 === 0) {
      const v = new DataView(t.buffer, t.byteOffset + i + 2, len - 2);
      options.sack = [];
      for (let b = 0; b < len - 2; b += 8) options.sack.push([v.getUint32(b), v.getUint32(b + 4)]);
    }
    i += len;
  }
  return {
    srcPort: (t[0] << 8) | t[1],
    dstPort: (t[2] << 8) | t[3],
    seq: ((t[4] << 24) | (t[5] << 16) | (t[6] << 8) | t[7]) >>> 0,
    ack: ((t[8] << 24) | (t[9] << 16) | (t[10] << 8) | t[11]) >>> 0,
    flags,
    window: (t[14] << 8) | t[15],
    options,
    payload: t.subarray(off),
  };
}

/** Where a segment's payload can be copied from straight into the packet (the send buffer). */
export interface PayloadSource {
  copyTo(out: Uint8Array, at: number, offset: number, len: number): void;
}

export interface SegmentOut {
  src: Uint8Array;
  dst: Uint8Array;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options?: TcpOptions;
  payload?: Uint8Array;
  /** Instead of payload: `length` bytes from `offset` of a source, copied once, into the packet itself. */
  data?: { from: PayloadSource; offset: number; length: number };
  ttl?: number;
}

/**
 * Zeroed bytes for one outgoing packet, carved from 64 KiB slabs: an ArrayBuffer per packet costs more than
 * building the packet. A packet is a view into a slab (never transfer or reuse its .buffer); a slab lives while
 * any packet of it is held, so one held packet pins at most 64 KiB.
 */
const SLAB_BYTES = 64 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;
export function packetBytes(n: number): Uint8Array {
  if (n > SLAB_BYTES / 4) return new Uint8Array(n);
  if (slabUsed + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, n);
  slabUsed += (n + 7) & ~7;
  return out;
}

/**
 * One buffer for every packet a stack sends, when its output is done with each packet once the call returns (it
 * copies what it keeps, as the WireGuard path does): no ArrayBuffer or view is made per packet (the views, one per
 * length, are made once). Its bytes are not zeroed: the builders write every byte of a packet.
 */
export class PacketScratch {
  private readonly buf: ArrayBuffer;
  private readonly views: (Uint8Array | undefined)[] = [];

  constructor(private readonly max: number) {
    this.buf = new ArrayBuffer(max);
  }

  readonly bytes = (n: number): Uint8Array => {
    if (n > this.max) return packetBytes(n);
    let v = this.views[n];
    if (v === undefined) {
      v = new Uint8Array(this.buf, 0, n);
      this.views[n] = v;
    }
    return v;
  };
}

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

function optionBytes(o: TcpOptions | undefined): number {
  if (!o) return 0;
  let n = 0;
  if (o.mss !== undefined) n += 4;
  if (o.wscale !== undefined) n += 4; // NOP + WS
  if (o.sackOk) n += 4; // NOP NOP + SACK-permitted
  if (o.sack?.length) n += 4 + 8 * Math.min(4, o.sack.length); // NOP NOP + kind, length, blocks
  return n;
}

/** Writes an IPv4 or IPv6 header for `proto` with `payloadLen` bytes after it; returns the header length. */
export function writeIpHeader(
  out: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  payloadLen: number,
  ttl = 64,
): number {
  // Every byte is written (zero ones too): out may be a reused buffer (PacketScratch).
  if (src.length === 4) {
    const total = 20 + payloadLen;
    out[0] = 0x45;
    out[1] = 0;
    out[2] = total >> 8;
    out[3] = total & 0xff;
    out[4] = out[5] = 0; // identification: unused with don't-fragment
    out[6] = 0x40; // don't fragment
    out[7] = 0;
    out[8] = ttl;
    out[9] = proto;
    // The addresses byte by byte and the checksum from the fields themselves: a 4-byte set() and a summing loop
    // over the header cost more than the rest of the segment's header together.
    const s0 = src[0];
    const s1 = src[1];
    const s2 = src[2];
    const s3 = src[3];
    const d0 = dst[0];
    const d1 = dst[1];
    const d2 = dst[2];
    const d3 = dst[3];
    out[12] = s0;
    out[13] = s1;
    out[14] = s2;
    out[15] = s3;
    out[16] = d0;
    out[17] = d1;
    out[18] = d2;
    out[19] = d3;
    const sum =
      0x4500 +
      total +
      0x4000 +
      ((ttl << 8) | proto) +
      ((s0 << 8) | s1) +
      ((s2 << 8) | s3) +
      ((d0 << 8) | d1) +
      ((d2 << 8) | d3);
    const c = ~fold(sum) & 0xffff;
    out[10] = c >> 8;
    out[11] = c & 0xff;
    return 20;
  }
  out[0] = 0x60;
  out[1] = out[2] = out[3] = 0;
  out[4] = payloadLen >> 8;
  out[5] = payloadLen & 0xff;
  out[6] = proto;
  out[7] = ttl;
  out.set(src, 8);
  out.set(dst, 24);
  return 40;
}

/** Fills the checksum at `at` of the transport bytes t (pseudo-header included). */
export function fillTransportChecksum(
  t: Uint8Array,
  at: number,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
): void {
  fillChecksumFrom(t, 0, at, src, dst, proto);
}

/** fillTransportChecksum for transport bytes b[from, b.length): no view of them needed. */
function fillChecksumFrom(
  b: Uint8Array,
  from: number,
  at: number,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
): void {
  const field = from + at;
  b[field] = b[field + 1] = 0;
  const len = b.length - from;
  const pseudo = proto === IPPROTO.ICMP ? 0 : pseudoSum(src, dst, proto, len);
  let c = ~fold(sum16(b, from, b.length, pseudo)) & 0xffff;
  if (proto === IPPROTO.UDP && c === 0) c = 0xffff;
  b[field] = c >> 8;
  b[field + 1] = c & 0xff;
}

/** The RST that answers `seg` (from src to dst) when it has no connection (RFC 9293 §3.10.7.1). */
export function buildResetFor(src: Uint8Array, dst: Uint8Array, seg: TcpSegment): Uint8Array {
  const { SYN, FIN, ACK, RST } = TCP_FLAGS;
  const len = seg.payload.length + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0);
  const hasAck = (seg.flags & ACK) !== 0;
  return buildTcpPacket({
    src: dst,
    dst: src,
    srcPort: seg.dstPort,
    dstPort: seg.srcPort,
    seq: hasAck ? seg.ack : 0,
    ack: hasAck ? 0 : seqAdd(seg.seq, len),
    flags: hasAck ? RST : RST | ACK,
    window: 0,
  });
}

/**
 * Builds a whole IP packet carrying one TCP segment, written in place (one per segment sent: no views made), into
 * bytes from `alloc` (by default fresh ones; a PacketScratch's when the output copies what it keeps).
 */
export function buildTcpPacket(s: SegmentOut, alloc: (n: number) => Uint8Array = packetBytes): Uint8Array {
  const optLen = optionBytes(s.options);
  const payload = s.payload;
  const tcpLen = 20 + optLen + (payload?.length ?? s.data?.length ?? 0);
  const h = s.src.length === 4 ? 20 : 40;
  const out = alloc(h + tcpLen);
  writeIpHeader(out, s.src, s.dst, IPPROTO.TCP, tcpLen, s.ttl);
  out[h] = s.srcPort >> 8;
  out[h + 1] = s.srcPort & 0xff;
  out[h + 2] = s.dstPort >> 8;
  out[h + 3] = s.dstPort & 0xff;
  put32(out, h + 4, s.seq >>> 0);
  put32(out, h + 8, s.ack >>> 0);
  out[h + 12] = ((20 + optLen) >> 2) << 4;
  out[h + 13] = s.flags;
  const window = Math.min(0xffff, Math.max(0, s.window));
  out[h + 14] = window >> 8;
  out[h + 15] = window & 0xff;
  out[h + 18] = out[h + 19] = 0; // urgent pointer
  let i = h + 20;
  const o = s.options;
  if (o) i = writeOptions(out, i, o);
  if (payload) out.set(payload, i);
  else if (s.data) s.data.from.copyTo(out, i, s.data.offset, s.data.length);
  fillChecksumFrom(out, h, 16, s.src, s.dst, IPPROTO.TCP);
  return out;
}

/** Writes the options at i (in the order optionBytes counts them); returns where they end. */
function writeOptions(t: Uint8Array, at: number, o: TcpOptions): number {
  let i = at;
  if (o.mss !== undefined) {
    t.set([2, 4, o.mss >> 8, o.mss & 0xff], i);
    i += 4;
  }
  if (o.wscale !== undefined) {
    t.set([1, 3, 3, o.wscale], i);
    i += 4;
  }
  if (o.sackOk) {
    t.set([1, 1, 4, 2], i);
    i += 4;
  }
  if (o.sack?.length) {
    const blocks = o.sack.slice(0, 4);
    t.set([1, 1, 5, 2 + 8 * blocks.length], i);
    i += 4;
    for (const [start, end] of blocks) {
      put32(t, i, start >>> 0);
      put32(t, i + 4, end >>> 0);
      i += 8;
    }
  }
  return i;
}
