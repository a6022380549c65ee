// The bytes all TCP connections of a stack hold together — send buffers, received data the apps have not read
// yet and out-of-order data — against one cap, so many connections (or hostile peers) cannot add up to unbounded
// memory. Past the cap new data is refused (the peer resends it; the app's write waits); connections that were
// refused are woken once enough room returns. Each connection keeps a floor of a few received segments beyond the
// cap (ConnectionCore.receiveFloor), so that stacks full of send buffers still take the data that frees them.

/** A connection that was refused room and wants to hear when there is some again. */
export interface MemoryWaiter {
  onMemoryRoom(): void;
}

export class StackMemory {
  used = 0;
  private readonly waiting = new Set<MemoryWaiter>();
  private wakeQueued = false;

  constructor(readonly max: number) {}

  /** Bytes that may still be taken. */
  get room(): number {
    return Math.max(0, this.max - this.used);
  }

  /** Too little room left to start another connection (it could not move data). */
  get exhausted(): boolean {
    return this.room < this.max / 16;
  }

  /** Whether `n` more bytes fit under the cap. */
  fits(n: number): boolean {
    return this.used + n <= this.max;
  }

  change(delta: number): void {
    this.used += delta;
    // Wake waiters only with a worthwhile amount of room, so a full stack does not wake them per byte freed.
    if (delta < 0 && this.waiting.size > 0 && !this.wakeQueued && !this.exhausted) {
      this.wakeQueued = true;
      // Later, not now: the caller is in the middle of processing one of its own segments.
      queueMicrotask(() => this.wake());
    }
  }

  wait(w: MemoryWaiter): void {
    this.waiting.add(w);
  }

  forget(w: MemoryWaiter): void {
    this.waiting.delete(w);
  }

  get waiters(): number {
    return this.waiting.size;
  }

  private wake(): void {
    this.wakeQueued = false;
    const all = [...this.waiting];
    this.waiting.clear();
    for (const w of all) w.onMemoryRoom();
  }
}
