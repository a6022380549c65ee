// Receive-side TCP coalescing ("GRO in userspace") for TUN devices opened with a virtio_net_hdr.
// Consecutive in-order segments of one TCP flow in a batch are joined into one super-packet that the
// kernel takes as a GSO packet: one write and one pass through its TCP stack instead of dozens, and far
// fewer ACKs sent back through the tunnel. Everything else is written as it came, behind a zero header.

import { fold, sum16 } from '../packet/checksum.ts';

export const VNET_HDR_LEN = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
const MAX_IP_LEN = 65535;

/** A parsed TCP segment; the coalescer keeps a pool of these and refills them (pkt is the caller's). */
class Segment {
  pkt: Uint8Array = EMPTY;
  v6 = false;
  tcpOff = 0;
  hdrLen = 0;
  payloadLen = 0;
  seq = 0;
  flags = 0;
}

const EMPTY = new Uint8Array(0);
/** Plain packets up to this size are framed in one of OUT_MAX reusable slots; bigger ones get their own buffer. */
const PLAIN_SLOT_BYTES = VNET_HDR_LEN + 4096;
const OUT_MAX = 64;
/** Where super-packets are built between two writes (one at least, of 64 KiB, always fits). */
const ARENA_BYTES = 512 * 1024;

/** A reusable frame buffer and the view for the last frame length framed in it. */
class PlainSlot {
  readonly buf = new Uint8Array(PLAIN_SLOT_BYTES);
  view: Uint8Array = EMPTY;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Fills seg from a TCP segment that may be coalesced; false if not one (not TCP, IP options, fragments, ext. headers). */
function parseSegment(pkt: Uint8Array, seg: Segment): boolean {
  const v = pkt[0] >> 4;
  let tcpOff: number;
  if (v === 4) {
    if ((pkt[0] & 0x0f) !== 5 || pkt[9] !== 6) return false;
    if ((pkt[6] & 0x3f) !== 0 || pkt[7] !== 0) return false; // MF or a fragment offset
    tcpOff = 20;
  } else if (v === 6) {
    if (pkt[6] !== 6) return false;
    tcpOff = 40;
  } else {
    return false;
  }
  if (pkt.length < tcpOff + 20) return false;
  const doff = (pkt[tcpOff + 12] >> 4) * 4;
  if (doff < 20 || pkt.length < tcpOff + doff) return false;
  seg.pkt = pkt;
  seg.v6 = v === 6;
  seg.tcpOff = tcpOff;
  seg.hdrLen = tcpOff + doff;
  seg.payloadLen = pkt.length - tcpOff - doff;
  seg.seq = u32(pkt, tcpOff + 4);
  seg.flags = pkt[tcpOff + 13];
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same flow and the same IP/TCP header apart from lengths, IDs, checksums, sequence, flags and window. */
function sameFlow(a: Segment, b: Segment): boolean {
  if (a.v6 !== b.v6 || a.hdrLen !== b.hdrLen) return false;
  const p = a.pkt;
  const q = b.pkt;
  if (a.v6) {
    if (!sameBytes(p, q, 0, 4) || p[7] !== q[7] || !sameBytes(p, q, 8, 40)) return false;
  } else if (p[1] !== q[1] || p[8] !== q[8] || !sameBytes(p, q, 12, 20)) {
    return false;
  }
  const t = a.tcpOff;
  // Ports, ACK number, data offset, then the options.
  return sameBytes(p, q, t, t + 4) && sameBytes(p, q, t + 8, t + 13) && sameBytes(p, q, t + 20, a.hdrLen);
}

/**
 * Frames go out in reusable buffers, so the write callback must be done with them when it returns (the TUN's
 * writeMany copies them to the kernel). Nothing is allocated per packet: segments come from a pool, plain packets
 * are framed in per-position slots whose views are kept per length, super-packets are built in an arena.
 */
export class TcpCoalescer {
  /** The group is pool[0, groupLen); pool[groupLen] (made when first needed) is where the next packet is parsed. */
  private readonly pool: Segment[] = [];
  private groupLen = 0;
  private groupBytes = 0;
  /** Frames to write: out[0, outLen). Kept at its size (emptying an array by length = 0 frees its storage). */
  private readonly out: Uint8Array[] = new Array(OUT_MAX).fill(EMPTY);
  private outLen = 0;
  private readonly slots: PlainSlot[] = Array.from({ length: OUT_MAX }, () => new PlainSlot());
  private readonly arena = new Uint8Array(ARENA_BYTES);
  private arenaUsed = 0;
  /** Super-packets written, and segments folded into them (for stats). */
  coalesced = 0;
  segmentsCoalesced = 0;

  constructor(private readonly write: (packets: Uint8Array[], count: number) => void) {}

  /** Takes an IP packet bound for the TUN; it must stay as it is until the next flush(). */
  push(pkt: Uint8Array): void {
    const si = this.groupLen;
    if (si === this.pool.length) this.pool.push(new Segment());
    const spare = this.pool[si];
    const isSeg = parseSegment(pkt, spare);
    if (isSeg && this.canAppend(spare)) {
      this.groupLen++;
      this.groupBytes += spare.payloadLen;
      return;
    }
    this.closeGroup();
    if (isSeg && spare.payloadLen > 0 && (spare.flags & ~(TCP_ACK | TCP_PSH)) === 0) {
      // spare starts the next group: move it to the pool's front.
      this.pool[si] = this.pool[0];
      this.pool[0] = spare;
      this.groupLen = 1;
      this.groupBytes = spare.payloadLen;
    } else {
      this.emit(this.plain(pkt));
    }
    if (this.outLen >= OUT_MAX) this.flushOut();
  }

  /** Writes everything pending. Call at the end of each batch. */
  flush(): void {
    this.closeGroup();
    this.flushOut();
  }

  private canAppend(seg: Segment): boolean {
    const n = this.groupLen;
    if (n === 0) return false;
    const first = this.pool[0];
    const last = this.pool[n - 1];
    const gso = first.payloadLen;
    return (
      last.flags === TCP_ACK &&
      last.payloadLen === gso &&
      (seg.flags === TCP_ACK || seg.flags === (TCP_ACK | TCP_PSH)) &&
      seg.payloadLen > 0 &&
      seg.payloadLen <= gso &&
      seg.seq === (last.seq + last.payloadLen) >>> 0 &&
      first.hdrLen + this.groupBytes + seg.payloadLen <= MAX_IP_LEN &&
      sameFlow(first, seg)
    );
  }

  private closeGroup(): void {
    const n = this.groupLen;
    if (n === 1) this.emit(this.plain(this.pool[0].pkt));
    else if (n > 1) {
      if (this.outLen >= OUT_MAX) this.flushOut();
      const frame = VNET_HDR_LEN + this.pool[0].hdrLen + this.groupBytes;
      if (this.arenaUsed + frame > ARENA_BYTES) this.flushOut();
      this.emit(superPacket(this.pool, n, this.groupBytes, this.arena, this.arenaUsed));
      this.arenaUsed += frame;
      this.coalesced++;
      this.segmentsCoalesced += n;
    }
    for (let i = 0; i < n; i++) this.pool[i].pkt = EMPTY; // drop the caller's buffers
    this.groupLen = 0;
    this.groupBytes = 0;
  }

  private emit(frame: Uint8Array): void {
    this.out[this.outLen++] = frame;
  }

  private flushOut(): void {
    if (this.outLen === 0) return;
    this.write(this.out, this.outLen);
    this.outLen = 0;
    this.arenaUsed = 0;
  }

  /** A packet behind a zero virtio_net_hdr (no offload, the kernel checks it as usual), in the next out slot. */
  private plain(pkt: Uint8Array): Uint8Array {
    if (this.outLen >= OUT_MAX) this.flushOut();
    const frame = VNET_HDR_LEN + pkt.length;
    if (frame > PLAIN_SLOT_BYTES) {
      const out = new Uint8Array(frame);
      out.set(pkt, VNET_HDR_LEN);
      return out;
    }
    const slot = this.slots[this.outLen];
    slot.buf.fill(0, 0, VNET_HDR_LEN);
    slot.buf.set(pkt, VNET_HDR_LEN);
    if (slot.view.length !== frame) slot.view = slot.buf.subarray(0, frame);
    return slot.view;
  }
}

/**
 * Builds the super-packet of g[0, n) in arena at `base` and returns its frame (virtio_net_hdr + IP packet). Each
 * segment is copied whole, last first, so that its headers land on bytes the one before it then overwrites: only
 * the first's stay, and no view is made per segment. All have the same header length (sameFlow).
 */
function superPacket(g: Segment[], n: number, payloadBytes: number, arena: Uint8Array, base: number): Uint8Array {
  const first = g[0];
  const last = g[n - 1];
  const { tcpOff, hdrLen } = first;
  const total = hdrLen + payloadBytes;
  const ip = base + VNET_HDR_LEN;
  let at = ip + total;
  for (let i = n - 1; i >= 0; i--) {
    const s = g[i];
    at -= s.payloadLen;
    arena.set(s.pkt, at - hdrLen);
  }
  const b = arena;
  // TCP: PSH of the last segment, its window, and the pseudo-header sum the kernel completes (partial csum).
  b[ip + tcpOff + 13] = first.flags | (last.flags & TCP_PSH);
  b[ip + tcpOff + 14] = last.pkt[tcpOff + 14];
  b[ip + tcpOff + 15] = last.pkt[tcpOff + 15];
  const tcpLen = total - tcpOff;
  let pseudo: number;
  if (first.v6) {
    b[ip + 4] = (tcpLen >> 8) & 0xff;
    b[ip + 5] = tcpLen & 0xff;
    pseudo = sum16(b, ip + 8, ip + 40) + tcpLen + 6;
  } else {
    b[ip + 2] = total >> 8;
    b[ip + 3] = total & 0xff;
    b[ip + 10] = b[ip + 11] = 0;
    const c = ~fold(sum16(b, ip, ip + 20)) & 0xffff;
    b[ip + 10] = c >> 8;
    b[ip + 11] = c & 0xff;
    pseudo = sum16(b, ip + 12, ip + 20) + tcpLen + 6;
  }
  const p = fold(pseudo);
  b[ip + tcpOff + 16] = p >> 8;
  b[ip + tcpOff + 17] = p & 0xff;
  // virtio_net_hdr, little-endian: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
  b[base] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  b[base + 1] = first.v6 ? GSO_TCPV6 : GSO_TCPV4;
  put16le(b, base + 2, hdrLen);
  put16le(b, base + 4, first.payloadLen);
  put16le(b, base + 6, tcpOff);
  put16le(b, base + 8, 16);
  return b.subarray(base, ip + total);
}

function put16le(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = v >>> 8;
}
