// In-order received bytes on their way to the app's stream. A push into a Node stream (and the write it sets off
// downstream, e.g. to the loopback socket of a proxy) costs far more than copying a segment, and was over a third
// of a download's CPU when done per segment. So bytes are copied at once (the packet buffer is the data path's)
// into a slab shared by all connections, and pushed once per turn of the event loop (setImmediate): the data path
// hands packets over in batches, several per wake-up (the addon drains up to 256 datagrams in batches of 64), and
// one push (one write downstream) then carries them all.
//
// Memory: staged bytes count as the app's (see `staged`), so windows and the stack's cap see them exactly. A
// pushed view keeps its whole slab alive while the app holds it, so only views of at least SLAB/16 are pushed
// (the pinning is then bounded as with Node's pool, where a 512-byte chunk pins 8 KiB); smaller runs get a copy
// of their own, and their slab bytes are reused.

const SLAB_BYTES = 128 * 1024;
/** Smallest run pushed as a view into the slab. */
const MIN_VIEW = SLAB_BYTES / 16;
/** Below this a copy gets its own ArrayBuffer rather than a slice of Node's 8 KiB pool, which it would pin. */
const OWN_BUFFER_BELOW = 512;

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

/** Stages with bytes to push at the end of this turn, and whether the one setImmediate for them is queued. */
const due: ReceiveStage[] = [];
let dueQueued = false;

function flushDue(): void {
  dueQueued = false;
  for (const stage of due.splice(0)) stage.flushDue();
}

function ownCopy(b: Uint8Array): Buffer {
  if (b.length < OWN_BUFFER_BELOW) {
    const own = Buffer.allocUnsafeSlow(b.length);
    own.set(b);
    return own;
  }
  const c = Buffer.allocUnsafe(b.length);
  c.set(b);
  return c;
}

export class ReceiveStage {
  /** The run of bytes staged now: slab[start, end) of `at`. */
  private at: Buffer | undefined;
  private start = 0;
  private end = 0;
  private flushQueued = false;

  /** `push` hands one run to the stream, in order; `live` says whether the stream still wants bytes. */
  constructor(
    private readonly push: (b: Buffer) => void,
    private readonly live: () => boolean,
  ) {}

  /** Bytes copied but not pushed yet. */
  get staged(): number {
    return this.end - this.start;
  }

  /** Copies `data` (valid only during this call) to be pushed at the end of this turn of the event loop. */
  add(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    if (n > SLAB_BYTES / 4) {
      // Larger than any segment (reassembled runs come piece by piece): it gets its own buffer, in order.
      this.flush();
      if (this.live()) this.push(ownCopy(data));
      return;
    }
    // Only the newest run of the shared slab can grow in place; another connection may have taken the bytes after ours.
    if (this.at === slab && this.end === slabUsed && slabUsed + n > SLAB_BYTES && this.staged < MIN_VIEW) {
      // The slab's tail is too short for this segment. Pushing the short run now would free its bytes for the
      // next turn to start at the same spot and stop there again: every push would be this short (a 4-segment
      // write downstream each, measured). Carry the run to a fresh slab instead.
      this.moveToNewSlab();
    } else if (this.at !== slab || this.end !== slabUsed || slabUsed + n > SLAB_BYTES) {
      this.flush();
      if (slabUsed + n > SLAB_BYTES) {
        slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        slabUsed = 0;
      }
      this.at = slab;
      this.start = this.end = slabUsed;
    }
    slab.set(data, slabUsed);
    slabUsed += n;
    this.end = slabUsed;
    if (!this.flushQueued) {
      this.flushQueued = true;
      due.push(this);
      if (!dueQueued) {
        dueQueued = true;
        setImmediate(flushDue);
      }
    }
  }

  /** The turn's end: push what is staged. */
  flushDue(): void {
    this.flushQueued = false;
    this.flush();
  }

  /** Pushes what is staged now (before the end of the stream, and at the end of the turn). */
  flush(): void {
    const at = this.at;
    const n = this.end - this.start;
    if (!at || n === 0) return;
    const run = at.subarray(this.start, this.end);
    if (n >= MIN_VIEW) {
      this.reset();
      if (this.live()) this.push(run);
      return;
    }
    const copy = this.live() ? ownCopy(run) : undefined;
    // The run was copied out: if nothing was carved after it, its slab bytes are free again.
    if (at === slab && this.end === slabUsed) slabUsed = this.start;
    this.reset();
    if (copy) this.push(copy);
  }

  /** Carries the staged run, the newest of the slab, to the start of a fresh slab. */
  private moveToNewSlab(): void {
    const run = slab.subarray(this.start, this.end);
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slab.set(run);
    slabUsed = run.length;
    this.at = slab;
    this.start = 0;
    this.end = slabUsed;
  }

  /** Forgets what is staged (the stream is gone). */
  clear(): void {
    if (this.at === slab && this.end === slabUsed) slabUsed = this.start;
    this.reset();
  }

  private reset(): void {
    this.at = undefined;
    this.start = this.end = 0;
  }
}
