// The send side's bytes: what the app wrote and the peer has not yet acknowledged, addressed by offset from
// SND.UNA. Chunks are kept as written (no copy on write); a segment copies its bytes out once.

export class SendBuffer {
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already acknowledged. */
  private headOffset = 0;
  private total = 0;
  /**
   * Where the last copy started: chunks[cursor] begins cursorBase bytes into chunks[0]. Segments are copied out in
   * order, so the next one starts here instead of at chunks[0]; with a 4 MiB buffer that scan passed up to 64
   * chunks a segment.
   */
  private cursor = 0;
  private cursorBase = 0;

  /** Bytes held (unsent plus unacknowledged). */
  get length(): number {
    return this.total;
  }

  append(data: Uint8Array): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.total += data.length;
  }

  /** Drops the first `n` bytes (acknowledged). */
  consume(n: number): void {
    let left = Math.min(n, this.total);
    this.total -= left;
    while (left > 0) {
      const head = this.chunks[0];
      const avail = head.length - this.headOffset;
      if (left < avail) {
        this.headOffset += left;
        return;
      }
      left -= avail;
      this.chunks.shift();
      this.headOffset = 0;
      if (this.cursor > 0) {
        this.cursor--;
        this.cursorBase -= head.length;
      } else {
        this.cursorBase = 0;
      }
    }
  }

  /** A copy of bytes [offset, offset + len) (clipped to what is held). */
  read(offset: number, len: number): Uint8Array {
    const out = new Uint8Array(Math.max(0, Math.min(len, this.total - offset)));
    this.copyTo(out, 0, offset, out.length);
    return out;
  }

  /** Copies bytes [offset, offset + len) into out at `at` (a segment is built around them in place). */
  copyTo(out: Uint8Array, at: number, offset: number, len: number): void {
    const n = Math.max(0, Math.min(len, this.total - offset));
    if (n === 0) return;
    const pos = offset + this.headOffset; // from the start of chunks[0]
    if (pos < this.cursorBase) {
      this.cursor = 0; // a retransmission from before the last copy
      this.cursorBase = 0;
    }
    while (this.cursor < this.chunks.length - 1 && pos >= this.cursorBase + this.chunks[this.cursor].length) {
      this.cursorBase += this.chunks[this.cursor].length;
      this.cursor++;
    }
    let skip = pos - this.cursorBase;
    let written = 0;
    for (let i = this.cursor; i < this.chunks.length && written < n; i++) {
      const chunk = this.chunks[i];
      const take = Math.min(chunk.length - skip, n - written);
      out.set(take === chunk.length ? chunk : chunk.subarray(skip, skip + take), at + written);
      written += take;
      skip = 0;
    }
  }

  clear(): void {
    this.chunks = [];
    this.headOffset = 0;
    this.total = 0;
    this.cursor = 0;
    this.cursorBase = 0;
  }
}
