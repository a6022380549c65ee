// Sets of addresses as sorted ranges of one family, built by adding and removing prefixes, and turned back into the
// fewest CIDR prefixes: what an exit node's filter needs to cut its own LANs out of 0.0.0.0/0 and ::/0.
import { isIP } from 'node:net';
import { parseAddress } from '../packet/ip.ts';

export interface Cidr {
  version: 4 | 6;
  /** Network address as an integer (host bits zero). */
  base: bigint;
  bits: number;
}

const WIDTH = { 4: 32, 6: 128 } as const;

function toBig(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** "addr/bits" or a bare address (a host prefix); host bits are cleared. Undefined when it is neither. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const kind = isIP(addr);
  if (kind !== 4 && kind !== 6) return undefined;
  const width: number = WIDTH[kind];
  let bits = width;
  if (slash >= 0) {
    const t = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(t)) return undefined;
    bits = Number(t);
    if (bits > width) return undefined;
  }
  const hostMask = (1n << BigInt(width - bits)) - 1n;
  return { version: kind, base: toBig(parseAddress(addr)) & ~hostMask, bits };
}

export function formatCidr(c: Cidr): string {
  const width = WIDTH[c.version];
  const bytes = new Uint8Array(width / 8);
  let v = c.base;
  for (let i = bytes.length - 1; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  if (c.version === 4) return `${bytes.join('.')}/${c.bits}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // The longest run of zero groups (two or more) becomes "::", as netip prints it.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const text =
    best < 0 ? groups.join(':') : `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  return `${text}/${c.bits}`;
}

/** The canonical text of a CIDR (host bits cleared, IPv6 compressed), or undefined when it does not parse. */
export function canonicalCidr(text: string): string | undefined {
  const c = parseCidr(text.trim());
  return c ? formatCidr(c) : undefined;
}

function rangeOf(c: Cidr): [bigint, bigint] {
  return [c.base, c.base + (1n << BigInt(WIDTH[c.version] - c.bits)) - 1n];
}

/** Addresses of one family as disjoint, sorted, inclusive ranges. */
export class RangeSet {
  private ranges: Array<[bigint, bigint]> = [];

  constructor(readonly version: 4 | 6) {}

  add(c: Cidr): this {
    if (c.version !== this.version) return this;
    const [lo, hi] = rangeOf(c);
    const out: Array<[bigint, bigint]> = [];
    let nlo = lo;
    let nhi = hi;
    for (const [a, b] of this.ranges) {
      if (b + 1n < nlo || a > nhi + 1n) {
        out.push([a, b]);
        continue;
      }
      if (a < nlo) nlo = a; // bigints: no Math.min
      if (b > nhi) nhi = b;
    }
    out.push([nlo, nhi]);
    this.ranges = out.sort((x, y) => (x[0] < y[0] ? -1 : 1));
    return this;
  }

  remove(c: Cidr): this {
    if (c.version !== this.version) return this;
    const [lo, hi] = rangeOf(c);
    const out: Array<[bigint, bigint]> = [];
    for (const [a, b] of this.ranges) {
      if (b < lo || a > hi) {
        out.push([a, b]);
        continue;
      }
      if (a < lo) out.push([a, lo - 1n]);
      if (b > hi) out.push([hi + 1n, b]);
    }
    this.ranges = out;
    return this;
  }

  /** The fewest prefixes covering exactly this set. */
  prefixes(): Cidr[] {
    const width = WIDTH[this.version];
    const out: Cidr[] = [];
    for (const [a, b] of this.ranges) {
      let lo = a;
      while (lo <= b) {
        let size = 0; // the largest aligned block at lo that stays within b
        while (
          size < width &&
          (lo & ((1n << BigInt(size + 1)) - 1n)) === 0n &&
          lo + (1n << BigInt(size + 1)) - 1n <= b
        ) {
          size++;
        }
        out.push({ version: this.version, base: lo, bits: width - size });
        lo += 1n << BigInt(size);
      }
    }
    return out;
  }
}
