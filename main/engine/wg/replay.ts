// Sliding replay window (RFC 6479 style, as wireguard-go's replay.Filter): a ring of 128 64-bit blocks,
// window 8128. Counters are JS numbers here: the hot path never sees values past 2^53, and the
// REJECT_AFTER_MESSAGES limit is far beyond what a session lives to send.
const BLOCK_BITS_LOG = 5; // 32-bit words
const BLOCK_BITS = 1 << BLOCK_BITS_LOG;
const RING_BLOCKS = 256; // 256 × 32 bits = 128 × 64 bits
const BLOCK_MASK = RING_BLOCKS - 1;
export const REPLAY_WINDOW = (RING_BLOCKS - 2) * BLOCK_BITS; // (128 - 1) × 64 = 8128

export class ReplayFilter {
  private last = 0;
  private readonly ring = new Uint32Array(RING_BLOCKS);

  reset(): void {
    this.last = 0;
    this.ring.fill(0);
  }

  /** Returns true and records the counter when it is new and within the window; limit is exclusive. */
  accept(counter: number, limit: number): boolean {
    if (counter >= limit) return false;
    let index = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const current = Math.floor(this.last / BLOCK_BITS);
      const diff = Math.min(index - current, RING_BLOCKS);
      for (let i = 1; i <= diff; i++) this.ring[(current + i) & BLOCK_MASK] = 0;
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW) {
      return false;
    }
    index &= BLOCK_MASK;
    const bit = 1 << (counter & (BLOCK_BITS - 1));
    const old = this.ring[index];
    if ((old & bit) !== 0) return false;
    this.ring[index] = old | bit;
    return true;
  }
}
