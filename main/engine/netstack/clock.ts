// Time for the stack: an injectable clock so unit tests run TCP's timers deterministically, and a timer queue
// so the stack keeps one clock timer for all its connections (not one per segment).

export interface TimerHandle {
  readonly at: number;
}

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Runs `fn` once after `delayMs`. */
  setTimer(fn: () => void, delayMs: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/** The real clock: performance.now() and unref'd Node timers (the data path keeps the process alive). */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, delayMs) {
    const t = setTimeout(fn, Math.max(0, delayMs));
    t.unref?.();
    return Object.assign(t, { at: performance.now() + delayMs }) as unknown as TimerHandle;
  },
  clearTimer(handle) {
    clearTimeout(handle as unknown as NodeJS.Timeout);
  },
};

interface ManualTimer extends TimerHandle {
  fn: () => void;
  seq: number;
  cancelled: boolean;
}

/** A clock that only moves when told to: advance() runs the timers that fall due, in order. For tests. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: ManualTimer[] = [];

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, delayMs: number): TimerHandle {
    const timer: ManualTimer = { at: this.t + Math.max(0, delayMs), fn, seq: this.seq++, cancelled: false };
    this.timers.push(timer);
    return timer;
  }

  clearTimer(handle: TimerHandle): void {
    (handle as ManualTimer).cancelled = true;
  }

  /** When the next pending timer falls due, or Infinity. */
  nextAt(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const timer of this.timers) if (!timer.cancelled && timer.at < next) next = timer.at;
    return next;
  }

  /** Moves time forward by `ms`, running each due timer at its own instant. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      let due: ManualTimer | undefined;
      for (const timer of this.timers) {
        if (timer.at <= end && (!due || timer.at < due.at || (timer.at === due.at && timer.seq < due.seq))) due = timer;
      }
      if (!due) break;
      due.cancelled = true;
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }
}

/** Something with one deadline at a time that the queue calls back when it falls due. */
export interface TimerOwner {
  onTimer(now: number): void;
}

interface Entry {
  at: number;
  owner: TimerOwner;
  gen: number;
}

/**
 * A min-heap of deadlines behind one clock timer. Rescheduling pushes a new entry and marks the owner's old one
 * stale (by generation); stale entries are skipped when popped and purged when they outnumber live ones.
 */
export class TimerQueue {
  private heap: Entry[] = [];
  private readonly gens = new Map<TimerOwner, { gen: number; at: number }>();
  private armed: TimerHandle | undefined;

  constructor(private readonly clock: Clock) {}

  /** Sets `owner`'s deadline to `at` (absolute ms), or clears it with 0. */
  set(owner: TimerOwner, at: number): void {
    const cur = this.gens.get(owner);
    if (cur && cur.at === at) return;
    if (at === 0) {
      this.gens.delete(owner);
      return;
    }
    const gen = (cur?.gen ?? 0) + 1;
    this.gens.set(owner, { gen, at });
    this.push({ at, owner, gen });
    if (this.heap.length > 64 + 2 * this.gens.size) this.compact();
    this.rearm();
  }

  get size(): number {
    return this.gens.size;
  }

  private live(e: Entry): boolean {
    const cur = this.gens.get(e.owner);
    return cur !== undefined && cur.gen === e.gen;
  }

  private compact(): void {
    const keep = this.heap.filter((e) => this.live(e));
    this.heap = [];
    for (const e of keep) this.push(e);
  }

  private rearm(): void {
    while (this.heap.length && !this.live(this.heap[0])) this.pop();
    const first = this.heap[0];
    if (!first) {
      if (this.armed) this.clock.clearTimer(this.armed);
      this.armed = undefined;
      return;
    }
    if (this.armed && this.armed.at <= first.at) return;
    if (this.armed) this.clock.clearTimer(this.armed);
    this.armed = this.clock.setTimer(() => this.fire(), first.at - this.clock.now());
  }

  private fire(): void {
    this.armed = undefined;
    const now = this.clock.now();
    // Bounded: each owner fires at most once per call (a re-armed deadline lands in the future or next round).
    let budget = this.heap.length;
    while (this.heap.length && this.heap[0].at <= now && budget-- > 0) {
      const e = this.pop()!;
      if (!this.live(e)) continue;
      this.gens.delete(e.owner);
      e.owner.onTimer(now);
    }
    this.rearm();
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= h[i].at) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].at < h[m].at) m = l;
        if (r < h.length && h[r].at < h[m].at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
