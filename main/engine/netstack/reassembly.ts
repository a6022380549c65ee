// Out-of-order reassembly for the receive side: segments that arrive ahead of RCV.NXT wait here, by offset from
// RCV.NXT, until the gap before them fills. Held bytes are bounded by the caller (the advertised window), and
// overlapping data is trimmed so each byte is stored once.
import { seqAdd, seqDiff } from './segment.ts';

/** Most separate out-of-order pieces held per connection (data that continues a piece joins it). */
export const MAX_PIECES = 256;

/** Out-of-order bytes held by all connections of a stack, against one limit (so many connections cannot add up). */
export class ReassemblyBudget {
  used = 0;
  constructor(readonly max: number) {}
}

interface Piece {
  seq: number;
  len: number;
  /** The piece's bytes as they arrived, in order (contiguous segments join the piece before them). */
  parts: Uint8Array[];
}

export class Reassembly {
  /** Sorted by seq, non-overlapping. */
  private pieces: Piece[] = [];
  private held = 0;
  /** Sequence number of a FIN seen out of order, or -1. */
  finSeq = -1;
  /** Where the latest stored data began (for SACK's ordering). */
  private lastStored = 0;

  constructor(private readonly budget: ReassemblyBudget = new ReassemblyBudget(Number.MAX_SAFE_INTEGER)) {}

  get bytes(): number {
    return this.held;
  }

  /**
   * SACK blocks for what is held (RFC 2018 §4): contiguous pieces merged, the block holding the most recently
   * stored data first, then the rest in sequence order; at most `max`.
   */
  sackBlocks(max: number): [number, number][] {
    const blocks: [number, number][] = [];
    for (const p of this.pieces) {
      const end = seqAdd(p.seq, p.len);
      const last = blocks[blocks.length - 1];
      if (last && last[1] === p.seq) last[1] = end;
      else blocks.push([p.seq, end]);
    }
    const recent = blocks.findIndex(([s, e]) => seqDiff(this.lastStored, s) >= 0 && seqDiff(e, this.lastStored) > 0);
    if (recent > 0) blocks.unshift(...blocks.splice(recent, 1));
    return blocks.slice(0, max);
  }

  get segments(): number {
    return this.pieces.length;
  }

  /**
   * Stores data at `seq` (which is after `rcvNxt`), copying it (the packet buffer is not ours to keep).
   * Bytes beyond `limit` (absolute seq, exclusive) are dropped. Returns how many bytes were newly stored, or -1 when the piece cap or the stack's budget is reached.
   */
  insert(seq: number, data: Uint8Array, rcvNxt: number, limit: number): number {
    // A peer sending many tiny disjoint pieces could make each insert costly; past the cap, drop (it resends).
    if (this.pieces.length >= MAX_PIECES) return -1;
    let start = seq;
    let bytes = data;
    const over = seqDiff(seqAdd(start, bytes.length), limit);
    if (over > 0) bytes = bytes.subarray(0, Math.max(0, bytes.length - over));
    const lead = seqDiff(rcvNxt, start);
    if (lead > 0) {
      bytes = bytes.subarray(lead);
      start = rcvNxt;
    }
    let stored = 0;
    // Walk the gaps between existing pieces that [start, end) covers and fill each one.
    let pos = start;
    const end = seqAdd(start, bytes.length);
    const fresh: { seq: number; data: Uint8Array }[] = [];
    for (const p of this.pieces) {
      if (seqDiff(end, pos) <= 0) break;
      const pEnd = seqAdd(p.seq, p.len);
      if (seqDiff(pEnd, pos) <= 0) continue;
      if (seqDiff(p.seq, pos) > 0) {
        const upto = seqDiff(p.seq, end) < 0 ? p.seq : end;
        const n = seqDiff(upto, pos);
        fresh.push({ seq: pos, data: bytes.slice(seqDiff(pos, start), seqDiff(pos, start) + n) });
        stored += n;
      }
      pos = seqDiff(pEnd, pos) > 0 ? pEnd : pos;
    }
    if (seqDiff(end, pos) > 0) {
      const n = seqDiff(end, pos);
      fresh.push({ seq: pos, data: bytes.slice(seqDiff(pos, start)) });
      stored += n;
    }
    if (stored > 0 && this.budget.used + stored > this.budget.max) return -1;
    if (fresh.length) {
      this.budget.used += stored;
      this.lastStored = fresh[0].seq;
      let added = false;
      for (const f of fresh) {
        // Data that continues a held piece (the usual case behind one hole) joins it rather than adding one.
        const before = this.pieces.find((p) => seqAdd(p.seq, p.len) === f.seq);
        if (before) {
          before.parts.push(f.data);
          before.len += f.data.length;
        } else {
          this.pieces.push({ seq: f.seq, len: f.data.length, parts: [f.data] });
          added = true;
        }
      }
      if (added) this.pieces.sort((a, b) => seqDiff(a.seq, rcvNxt) - seqDiff(b.seq, rcvNxt));
      this.held += stored;
    }
    return stored;
  }

  /** Removes and returns the pieces that now continue from `rcvNxt`, in order. */
  takeReady(rcvNxt: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let next = rcvNxt;
    while (this.pieces.length) {
      const p = this.pieces[0];
      let skip = seqDiff(next, p.seq);
      if (skip < 0) break;
      this.pieces.shift();
      this.held -= p.len;
      this.budget.used -= p.len;
      for (const part of p.parts) {
        if (skip >= part.length) {
          skip -= part.length;
          continue;
        }
        out.push(skip > 0 ? part.subarray(skip) : part);
        next = seqAdd(next, part.length - skip);
        skip = 0;
      }
    }
    return out;
  }

  /** Drops everything (the connection is closing or memory is short). */
  clear(): void {
    this.budget.used -= this.held;
    this.pieces = [];
    this.held = 0;
    this.finSeq = -1;
  }
}
