// Cryptokey routing table: longest-prefix match from an IP address to a peer, for both families.
// A plain binary trie: lookups walk at most 32/128 nodes and allocate nothing. IPv4 answers are also kept in a
// small direct-mapped cache, since every packet of a flow asks the same question (once to send, once to check
// the source of what comes back); any change to the table empties it.

interface TrieNode<T> {
  zero: TrieNode<T> | undefined;
  one: TrieNode<T> | undefined;
  value: T | undefined;
}

function node<T>(): TrieNode<T> {
  return { zero: undefined, one: undefined, value: undefined };
}

function bitAt(addr: Uint8Array, offset: number, i: number): number {
  return (addr[offset + (i >> 3)] >> (7 - (i & 7))) & 1;
}

export interface Prefix {
  /** 4 or 16 bytes. */
  address: Uint8Array;
  bits: number;
}

/** IPv4 cache entries (a power of two). */
const CACHE_SIZE = 256;

export class AllowedIPs<T> {
  private readonly v4 = node<T>();
  private readonly v6 = node<T>();
  /** Cached IPv4 addresses (as uint32; -1 = empty) and their answers. */
  private readonly cacheKeys = new Float64Array(CACHE_SIZE).fill(-1);
  private readonly cacheValues: Array<T | undefined> = new Array(CACHE_SIZE).fill(undefined);
  /** The table changed since the cache was last emptied: emptied at the next lookup, once for a whole netmap. */
  private cacheStale = false;

  insert(prefix: Prefix, value: T): void {
    this.cacheStale = true;
    let n = prefix.address.length === 4 ? this.v4 : this.v6;
    for (let i = 0; i < prefix.bits; i++) {
      if (bitAt(prefix.address, 0, i)) n = n.one ??= node<T>();
      else n = n.zero ??= node<T>();
    }
    n.value = value;
  }

  /** Removes every prefix that maps to value. */
  removeValue(value: T): void {
    this.cacheStale = true;
    const walk = (n: TrieNode<T> | undefined): void => {
      if (!n) return;
      if (n.value === value) n.value = undefined;
      walk(n.zero);
      walk(n.one);
    };
    walk(this.v4);
    walk(this.v6);
  }

  /** Longest match for an address stored at packet[offset…offset+len) (len 4 or 16). */
  lookup(packet: Uint8Array, offset: number, len: 4 | 16): T | undefined {
    if (len !== 4) return this.walk(packet, offset, len);
    if (this.cacheStale) {
      this.cacheKeys.fill(-1);
      this.cacheValues.fill(undefined);
      this.cacheStale = false;
    }
    const key =
      ((packet[offset] << 24) | (packet[offset + 1] << 16) | (packet[offset + 2] << 8) | packet[offset + 3]) >>> 0;
    const slot = (key ^ (key >>> 8) ^ (key >>> 16)) & (CACHE_SIZE - 1);
    if (this.cacheKeys[slot] === key) return this.cacheValues[slot];
    const value = this.walk(packet, offset, len);
    this.cacheKeys[slot] = key;
    this.cacheValues[slot] = value;
    return value;
  }

  private walk(packet: Uint8Array, offset: number, len: 4 | 16): T | undefined {
    let n: TrieNode<T> | undefined = len === 4 ? this.v4 : this.v6;
    let best = n.value;
    const bits = len * 8;
    for (let i = 0; i < bits && n; i++) {
      n = bitAt(packet, offset, i) ? n.one : n.zero;
      if (n && n.value !== undefined) best = n.value;
    }
    return best;
  }

  /** Every prefix held, for display. */
  entries(): Array<{ prefix: Prefix; value: T }> {
    const out: Array<{ prefix: Prefix; value: T }> = [];
    const walk = (n: TrieNode<T> | undefined, path: number[], len: 4 | 16): void => {
      if (!n) return;
      if (n.value !== undefined) {
        const address = new Uint8Array(len);
        path.forEach((b, i) => {
          if (b) address[i >> 3] |= 0x80 >> (i & 7);
        });
        out.push({ prefix: { address, bits: path.length }, value: n.value });
      }
      walk(n.zero, [...path, 0], len);
      walk(n.one, [...path, 1], len);
    };
    walk(this.v4, [], 4);
    walk(this.v6, [], 16);
    return out;
  }
}
