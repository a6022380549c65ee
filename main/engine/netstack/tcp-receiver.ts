// The receiving half of a TCP connection: RCV.NXT, the advertised window (never shrunk, opened in worthwhile
// steps), segment acceptability (RFC 9293 §3.10.7.4), trimming to the window and out-of-order reassembly.
import { Reassembly, type ReassemblyBudget } from './reassembly.ts';
import { seqAdd, seqDiff, TCP_FLAGS, type TcpSegment } from './segment.ts';

export interface Placed {
  /** In-order bytes now deliverable to the app (RCV.NXT already moved past them); the first may be a view into the packet. */
  chunks: Uint8Array[];
  /** The segment was stored ahead of a hole (or was a pure duplicate). */
  outOfOrder: boolean;
  /** The reassembly queue was at its piece cap; the segment was dropped. */
  capped: boolean;
  /** The segment filled a hole: tell the sender at once. */
  filledHole: boolean;
}

export class TcpReceiver {
  irs = 0;
  nxt = 0;
  /** Right edge of the window we advertised; never moved left. */
  advEdge = 0;
  shift = 0;
  /** Full-size segments received since the last ACK we sent, and when a delayed ACK is due. */
  unacked = 0;
  ackAt = 0;
  finSeen = false;
  readonly rq: Reassembly;

  constructor(
    readonly bufSize: number,
    budget?: ReassemblyBudget,
  ) {
    this.rq = new Reassembly(budget);
  }

  start(irs: number): void {
    this.irs = irs;
    this.nxt = seqAdd(irs, 1);
  }

  /** Our window scale: the smallest shift that lets the 16-bit field cover the receive buffer. */
  ourShift(): number {
    let s = 0;
    while (s < 14 && 0xffff * 2 ** s < this.bufSize) s++;
    return s;
  }

  get window(): number {
    return Math.max(0, seqDiff(this.advEdge, this.nxt));
  }

  acceptable(seg: TcpSegment): boolean {
    const { SYN, FIN } = TCP_FLAGS;
    const wnd = this.window;
    const len = seg.payload.length + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0);
    const start = seqDiff(seg.seq, this.nxt);
    if (len === 0) return wnd === 0 ? start === 0 : start >= 0 && start < wnd;
    if (wnd === 0) return false;
    const last = start + len - 1;
    return (start >= 0 && start < wnd) || (last >= 0 && last < wnd);
  }

  /** The window field to send now (scaled); the edge moves right only by at least a segment (RFC 9293 §3.8.6.2.2). */
  windowField(appBuffered: number, mss: number, stackRoom = Number.POSITIVE_INFINITY): number {
    // Beyond what is already promised, the window grows only by what the stack's memory cap still has room for.
    const free = Math.max(0, Math.min(this.bufSize - appBuffered, this.window + stackRoom));
    const proposed = seqAdd(this.nxt, free);
    const gain = seqDiff(proposed, this.advEdge);
    if (gain > 0 && (gain >= Math.min(this.bufSize / 2, mss) || free === this.bufSize)) this.advEdge = proposed;
    return this.window >>> this.shift;
  }

  /** After the app read: has the window opened enough that the peer should hear about it now? */
  wantsWindowUpdate(appBuffered: number, mss: number): boolean {
    const known = this.window;
    const free = this.bufSize - appBuffered;
    return known < this.bufSize / 2 && free - known >= Math.min(this.bufSize / 4, 2 * mss);
  }

  /** Trims a data segment to the window and either delivers it (with whatever it unblocks) or queues it. */
  place(segSeq: number, data: Uint8Array): Placed {
    const out: Placed = { chunks: [], outOfOrder: false, capped: false, filledHole: false };
    let payload = data;
    let seq = segSeq;
    const lead = seqDiff(this.nxt, seq);
    if (lead > 0) {
      payload = payload.subarray(lead);
      seq = this.nxt;
    }
    const room = seqDiff(this.advEdge, seq);
    if (payload.length > room) payload = payload.subarray(0, Math.max(0, room));
    if (payload.length === 0) {
      out.outOfOrder = true;
      return out;
    }
    if (seq !== this.nxt) {
      out.outOfOrder = true;
      out.capped = this.rq.insert(seq, payload, this.nxt, this.advEdge) < 0;
      return out;
    }
    out.filledHole = this.rq.segments > 0;
    out.chunks.push(payload); // a view into the packet: the app copies it (ReceiveStage) during onData
    this.nxt = seqAdd(this.nxt, payload.length);
    for (const piece of this.rq.takeReady(this.nxt)) {
      out.chunks.push(piece);
      this.nxt = seqAdd(this.nxt, piece.length);
    }
    return out;
  }
}
