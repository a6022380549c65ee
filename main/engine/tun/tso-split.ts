// Transmit-side offload for a TUN device read with a virtio_net_hdr after TUNSETOFFLOAD (Linux): the kernel hands
// over TCP super-packets (TSO, up to 64 KiB, one per burst of a flow) and packets whose TCP/UDP checksum it left
// for the device to finish. Here they are cut into MSS-sized segments and their checksums completed, as a NIC
// would: the kernel's TCP stack then works once per 64 KiB instead of once per packet, and so do our TUN reads.
// Malformed headers are counted and dropped; nothing here throws on what the kernel hands over.
import { fold, sum16 } from '../packet/checksum.ts';
import { VNET_HDR_LEN } from './tcp-coalesce.ts';

const F_NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;
const TCP_CSUM_OFFSET = 16;
const UDP_CSUM_OFFSET = 6;

const u16le = (b: Uint8Array, at: number): number => b[at] | (b[at + 1] << 8);
const u16be = (b: Uint8Array, at: number): number => (b[at] << 8) | b[at + 1];

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
}

export class TsoSplitter {
  /** Frames dropped: an offload header that does not describe the packet under it. */
  dropped = 0;
  /** Super-packets split, and the segments they gave. */
  superPackets = 0;
  segments = 0;
  /** Where each outgoing packet is built: 4-byte aligned, so checksums can read whole words. */
  private readonly scratch = new Uint8Array(65536 + 64);
  private readonly words = new Uint32Array(this.scratch.buffer);
  /** The last packet view handed to emit: segments of one flow share a length, so it is made once per length. */
  private view = this.scratch.subarray(0, 0);

  /**
   * Takes one frame (virtio_net_hdr + packet) as read from the TUN and calls emit for each plain packet it holds.
   * The packet passed to emit is only valid during the call.
   */
  split(frame: Uint8Array, emit: (pkt: Uint8Array) => void): void {
    if (frame.length <= VNET_HDR_LEN) {
      this.dropped++;
      return;
    }
    const flags = frame[0];
    const gsoType = frame[1];
    const pkt = frame.subarray(VNET_HDR_LEN);
    if (gsoType === GSO_NONE) {
      if ((flags & F_NEEDS_CSUM) === 0) emit(pkt);
      else this.finishChecksum(pkt, u16le(frame, 6), u16le(frame, 8), emit);
      return;
    }
    if ((gsoType & GSO_ECN) !== 0 || (gsoType !== GSO_TCPV4 && gsoType !== GSO_TCPV6)) {
      this.dropped++; // not asked for (no TUN_F_TSO_ECN, no USO)
      return;
    }
    this.splitTcp(pkt, gsoType === GSO_TCPV6, u16le(frame, 4), u16le(frame, 6), u16le(frame, 8), emit);
  }

  private finishChecksum(pkt: Uint8Array, start: number, offset: number, emit: (pkt: Uint8Array) => void): void {
    const v = pkt[0] >> 4;
    const l4ok = v === 4 ? start === (pkt[0] & 15) * 4 : v === 6 && start >= 40;
    if (!l4ok || (offset !== TCP_CSUM_OFFSET && offset !== UDP_CSUM_OFFSET) || start + offset + 2 > pkt.length) {
      this.dropped++;
      return;
    }
    const s = this.scratch;
    s.set(pkt);
    this.setL4Checksum(pkt.length, v === 6, start, offset, offset === TCP_CSUM_OFFSET ? 6 : 17);
    emit(this.viewOf(pkt.length));
  }

  private splitTcp(
    pkt: Uint8Array,
    v6: boolean,
    mss: number,
    l4: number,
    csumOffset: number,
    emit: (pkt: Uint8Array) => void,
  ): void {
    const len = pkt.length;
    const version = pkt[0] >> 4;
    const l4ok = v6 ? version === 6 && l4 >= 40 : version === 4 && l4 === (pkt[0] & 15) * 4;
    if (!l4ok || csumOffset !== TCP_CSUM_OFFSET || mss === 0 || l4 + 20 > len) {
      this.dropped++;
      return;
    }
    const hdrLen = l4 + (pkt[l4 + 12] >> 4) * 4;
    if (hdrLen < l4 + 20 || hdrLen > len) {
      this.dropped++;
      return;
    }
    const s = this.scratch;
    const payload = len - hdrLen;
    const seq0 = ((pkt[l4 + 4] << 24) | (pkt[l4 + 5] << 16) | (pkt[l4 + 6] << 8) | pkt[l4 + 7]) >>> 0;
    const flags0 = pkt[l4 + 13];
    const id0 = v6 ? 0 : u16be(pkt, 4);
    this.superPackets++;
    // The headers once: every field that differs between segments (lengths, ID, both checksums, sequence number,
    // flags) is written for each one below.
    s.set(pkt.subarray(0, hdrLen));
    let i = 0;
    for (let off = 0; i === 0 || off < payload; off += mss, i++) {
      const chunk = Math.min(mss, payload - off);
      const total = hdrLen + chunk;
      s.set(pkt.subarray(hdrLen + off, hdrLen + off + chunk), hdrLen);
      if (v6) {
        put16(s, 4, total - 40);
      } else {
        put16(s, 2, total);
        put16(s, 4, (id0 + i) & 0xffff);
        s[10] = 0;
        s[11] = 0;
        put16(s, 10, ~fold(sum16(s, 0, l4)) & 0xffff);
      }
      const seq = (seq0 + off) >>> 0;
      s[l4 + 4] = seq >>> 24;
      s[l4 + 5] = (seq >>> 16) & 0xff;
      s[l4 + 6] = (seq >>> 8) & 0xff;
      s[l4 + 7] = seq & 0xff;
      let f = flags0;
      if (off + chunk < payload) f &= ~(TCP_FIN | TCP_PSH); // only the last segment ends the burst
      if (i > 0) f &= ~TCP_CWR; // only the first carries the congestion-window-reduced mark
      s[l4 + 13] = f;
      this.setL4Checksum(total, v6, l4, TCP_CSUM_OFFSET, 6);
      this.segments++;
      emit(this.viewOf(total));
    }
  }

  private viewOf(len: number): Uint8Array {
    if (this.view.length !== len) this.view = this.scratch.subarray(0, len);
    return this.view;
  }

  /** Writes the TCP/UDP checksum (pseudo-header included) of the packet in scratch[0, total). */
  private setL4Checksum(total: number, v6: boolean, l4: number, csumOffset: number, proto: number): void {
    const s = this.scratch;
    s[l4 + csumOffset] = 0;
    s[l4 + csumOffset + 1] = 0;
    const l4Len = total - l4;
    // Pseudo-header: addresses, protocol, L4 length.
    let sum = v6 ? sum16(s, 8, 40) : sum16(s, 12, 20);
    sum += proto + (l4Len % 65536) + Math.floor(l4Len / 65536);
    // The L4 bytes a word at a time: summed as little-endian 32-bit words, the folded result is the big-endian
    // sum with its two bytes swapped (RFC 1071's byte-order independence). l4 is a multiple of 4.
    const w = this.words;
    const wordsEnd = l4 + ((l4Len >>> 2) << 2);
    let le = 0;
    for (let j = l4 >>> 2, end = wordsEnd >>> 2; j < end; j++) le += w[j];
    const f = fold(le);
    sum += ((f & 0xff) << 8) | (f >>> 8);
    let c = ~fold(sum16(s, wordsEnd, total, sum)) & 0xffff;
    if (c === 0 && proto === 17) c = 0xffff; // UDP: 0 means "no checksum"
    put16(s, l4 + csumOffset, c);
  }
}
