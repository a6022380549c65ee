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

interface Segment {
  pkt: Uint8Array;
  v6: boolean;
  tcpOff: number;
  hdrLen: number;
  payloadLen: number;
  seq: number;
  flags: number;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** A TCP segment that may be coalesced, or undefined (not TCP, IP options, fragments, extension headers). */
function segmentOf(pkt: Uint8Array): Segment | undefined {
  const v = pkt[0] >> 4;
  let tcpOff: number;
  if (v === 4) {
    if ((pkt[0] & 0x0f) !== 5 || pkt[9] !== 6) return undefined;
    if ((pkt[6] & 0x3f) !== 0 || pkt[7] !== 0) return undefined; // MF or a fragment offset
    tcpOff = 20;
  } else if (v === 6) {
    if (pkt[6] !== 6) return undefined;
    tcpOff = 40;
  } else {
    return undefined;
  }
  if (pkt.length < tcpOff + 20) return undefined;
  const doff = (pkt[tcpOff + 12] >> 4) * 4;
  if (doff < 20 || pkt.length < tcpOff + doff) return undefined;
  return {
    pkt,
    v6: v === 6,
    tcpOff,
    hdrLen: tcpOff + doff,
    payloadLen: pkt.length - tcpOff - doff,
    seq: u32(pkt, tcpOff + 4),
    flags: pkt[tcpOff + 13],
  };
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

export class TcpCoalescer {
  private group: Segment[] = [];
  private groupBytes = 0;
  private readonly out: Uint8Array[] = [];
  /** Super-packets written, and segments folded into them (for stats). */
  coalesced = 0;
  segmentsCoalesced = 0;

  constructor(private readonly write: (packets: Uint8Array[], count: number) => void) {}

  /** Takes ownership of an IP packet bound for the TUN. */
  push(pkt: Uint8Array): void {
    const seg = segmentOf(pkt);
    if (seg && this.canAppend(seg)) {
      this.group.push(seg);
      this.groupBytes += seg.payloadLen;
      return;
    }
    this.closeGroup();
    if (seg && seg.payloadLen > 0 && (seg.flags & ~(TCP_ACK | TCP_PSH)) === 0) {
      this.group.push(seg);
      this.groupBytes = seg.payloadLen;
    } else {
      this.out.push(plain(pkt));
    }
    if (this.out.length >= 64) this.flushOut();
  }

  /** Writes everything pending. Call at the end of each batch. */
  flush(): void {
    this.closeGroup();
    this.flushOut();
  }

  private canAppend(seg: Segment): boolean {
    const g = this.group;
    if (g.length === 0) return false;
    const first = g[0];
    const last = g[g.length - 1];
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
    const g = this.group;
    if (g.length === 1) this.out.push(plain(g[0].pkt));
    else if (g.length > 1) {
      this.out.push(superPacket(g, this.groupBytes));
      this.coalesced++;
      this.segmentsCoalesced += g.length;
    }
    this.group = [];
    this.groupBytes = 0;
  }

  private flushOut(): void {
    if (this.out.length === 0) return;
    this.write(this.out, this.out.length);
    this.out.length = 0;
  }
}

/** A packet behind a zero virtio_net_hdr: no offload, the kernel checks it as usual. */
function plain(pkt: Uint8Array): Uint8Array {
  const out = new Uint8Array(VNET_HDR_LEN + pkt.length);
  out.set(pkt, VNET_HDR_LEN);
  return out;
}

function superPacket(g: Segment[], payloadBytes: number): Uint8Array {
  const first = g[0];
  const last = g[g.length - 1];
  const { tcpOff, hdrLen } = first;
  const total = hdrLen + payloadBytes;
  const out = new Uint8Array(VNET_HDR_LEN + total);
  const ip = out.subarray(VNET_HDR_LEN);
  ip.set(first.pkt.subarray(0, hdrLen));
  let at = hdrLen;
  for (const s of g) {
    ip.set(s.pkt.subarray(s.hdrLen), at);
    at += s.payloadLen;
  }
  // TCP: PSH of the last segment, its window, and the pseudo-header sum the kernel completes (partial csum).
  ip[tcpOff + 13] = first.flags | (last.flags & TCP_PSH);
  ip[tcpOff + 14] = last.pkt[tcpOff + 14];
  ip[tcpOff + 15] = last.pkt[tcpOff + 15];
  const tcpLen = total - tcpOff;
  let pseudo: number;
  if (first.v6) {
    ip[4] = (tcpLen >> 8) & 0xff;
    ip[5] = tcpLen & 0xff;
    pseudo = sum16(ip, 8, 40) + tcpLen + 6;
  } else {
    ip[2] = total >> 8;
    ip[3] = total & 0xff;
    ip[10] = ip[11] = 0;
    const c = ~fold(sum16(ip, 0, 20)) & 0xffff;
    ip[10] = c >> 8;
    ip[11] = c & 0xff;
    pseudo = sum16(ip, 12, 20) + tcpLen + 6;
  }
  const p = fold(pseudo);
  ip[tcpOff + 16] = p >> 8;
  ip[tcpOff + 17] = p & 0xff;
  // virtio_net_hdr, little-endian: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
  const view = new DataView(out.buffer, out.byteOffset, VNET_HDR_LEN);
  view.setUint8(0, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  view.setUint8(1, first.v6 ? GSO_TCPV6 : GSO_TCPV4);
  view.setUint16(2, hdrLen, true);
  view.setUint16(4, first.payloadLen, true);
  view.setUint16(6, tcpOff, true);
  view.setUint16(8, 16, true);
  return out;
}
