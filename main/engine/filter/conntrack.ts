// Connection tracking for UDP/SCTP replies (docs/protocol/services.md §5.3/§5.4): outbound packets record their
// reversed 5-tuple; inbound packets whose tuple is recorded are admitted. A fixed-size LRU (512 entries,
// as tailscaled) in typed arrays: no allocation per packet. Shared across filter updates by the caller.
import type { PacketInfo } from '../packet/parse.ts';

export const CONNTRACK_CAPACITY = 512;

const KEY_WORDS = 10; // [version<<8 | proto, src0..3, dst0..3, srcPort<<16 | dstPort]

export class FlowTable {
  readonly capacity: number;
  private readonly keys: Uint32Array;
  private readonly hashes: Uint32Array;
  private readonly buckets: Int32Array;
  private readonly chain: Int32Array;
  private readonly newer: Int32Array;
  private readonly older: Int32Array;
  private readonly probe = new Uint32Array(KEY_WORDS);
  private readonly mask: number;
  private mru = -1;
  private lru = -1;
  private count = 0;

  constructor(capacity = CONNTRACK_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('FlowTable capacity must be >= 1');
    this.capacity = capacity;
    let nb = 2;
    while (nb < capacity * 2) nb <<= 1;
    this.mask = nb - 1;
    this.keys = new Uint32Array(capacity * KEY_WORDS);
    this.hashes = new Uint32Array(capacity);
    this.buckets = new Int32Array(nb).fill(-1);
    this.chain = new Int32Array(capacity).fill(-1);
    this.newer = new Int32Array(capacity).fill(-1);
    this.older = new Int32Array(capacity).fill(-1);
  }

  get size(): number {
    return this.count;
  }

  clear(): void {
    this.buckets.fill(-1);
    this.chain.fill(-1);
    this.mru = this.lru = -1;
    this.count = 0;
  }

  /** Records the reply tuple of an outbound packet (its source and destination swapped). */
  recordOutbound(p: PacketInfo): void {
    this.fill(p, true);
    const h = this.hash();
    const slot = this.find(h);
    if (slot >= 0) this.touch(slot);
    else this.insert(h);
  }

  /** Whether an inbound packet belongs to a recorded flow; a hit refreshes the entry. */
  hasInbound(p: PacketInfo): boolean {
    this.fill(p, false);
    const slot = this.find(this.hash());
    if (slot < 0) return false;
    this.touch(slot);
    return true;
  }

  private fill(p: PacketInfo, reverse: boolean): void {
    const k = this.probe;
    const a = reverse ? p.dst : p.src;
    const b = reverse ? p.src : p.dst;
    k[0] = (p.version << 8) | p.proto;
    k[1] = a[0];
    k[2] = a[1];
    k[3] = a[2];
    k[4] = a[3];
    k[5] = b[0];
    k[6] = b[1];
    k[7] = b[2];
    k[8] = b[3];
    k[9] = reverse ? (p.dstPort << 16) | p.srcPort : (p.srcPort << 16) | p.dstPort;
  }

  private hash(): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < KEY_WORDS; i++) h = Math.imul(h ^ this.probe[i], 0x01000193);
    return (h ^ (h >>> 15)) >>> 0;
  }

  private find(h: number): number {
    for (let s = this.buckets[h & this.mask]; s >= 0; s = this.chain[s]) {
      if (this.hashes[s] !== h) continue;
      const base = s * KEY_WORDS;
      let i = 0;
      while (i < KEY_WORDS && this.keys[base + i] === this.probe[i]) i++;
      if (i === KEY_WORDS) return s;
    }
    return -1;
  }

  private insert(h: number): void {
    let slot: number;
    if (this.count < this.capacity) {
      slot = this.count++;
    } else {
      slot = this.lru;
      this.unlinkBucket(slot);
      this.unlinkAge(slot);
    }
    this.keys.set(this.probe, slot * KEY_WORDS);
    this.hashes[slot] = h;
    const b = h & this.mask;
    this.chain[slot] = this.buckets[b];
    this.buckets[b] = slot;
    this.pushFront(slot);
  }

  private unlinkBucket(slot: number): void {
    const b = this.hashes[slot] & this.mask;
    if (this.buckets[b] === slot) {
      this.buckets[b] = this.chain[slot];
      return;
    }
    for (let s = this.buckets[b]; s >= 0; s = this.chain[s]) {
      if (this.chain[s] === slot) {
        this.chain[s] = this.chain[slot];
        return;
      }
    }
  }

  private touch(slot: number): void {
    if (this.mru === slot) return;
    this.unlinkAge(slot);
    this.pushFront(slot);
  }

  private unlinkAge(slot: number): void {
    const n = this.newer[slot];
    const o = this.older[slot];
    if (n >= 0) this.older[n] = o;
    else this.mru = o;
    if (o >= 0) this.newer[o] = n;
    else this.lru = n;
    this.newer[slot] = this.older[slot] = -1;
  }

  private pushFront(slot: number): void {
    this.newer[slot] = -1;
    this.older[slot] = this.mru;
    if (this.mru >= 0) this.newer[this.mru] = slot;
    this.mru = slot;
    if (this.lru < 0) this.lru = slot;
  }
}
