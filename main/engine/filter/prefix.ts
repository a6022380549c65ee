// Address prefixes as u32 words, for allocation-free matching against PacketInfo addresses.
// Text parsing here is for compile time (netmap updates) and returns null instead of throwing.
import { AddressError, parseAddress } from '../packet/ip.ts';

export interface IpPrefix {
  version: 4 | 6;
  /** Network address words, host bits zero (IPv4: word 0 only). */
  words: Uint32Array;
  bits: number;
}

/** Parses a plain IPv4/IPv6 address into words; null when it is not one (zones are refused). */
export function parseIpWords(text: string): { version: 4 | 6; words: Uint32Array } | null {
  if (text.includes('%')) return null;
  let bytes: Uint8Array;
  try {
    bytes = parseAddress(text);
  } catch (err) {
    if (err instanceof AddressError) return null;
    throw err;
  }
  const words = new Uint32Array(4);
  for (let i = 0; i < bytes.length; i++) words[i >> 2] |= bytes[i] << (24 - 8 * (i & 3));
  return { version: bytes.length === 4 ? 4 : 6, words };
}

/** Mask word `w` of a prefix of length `bits`. */
function maskWord(bits: number, w: number): number {
  const b = bits - 32 * w;
  if (b <= 0) return 0;
  if (b >= 32) return 0xffffffff;
  return (0xffffffff << (32 - b)) >>> 0;
}

function hasHostBits(words: Uint32Array, bits: number): boolean {
  for (let w = 0; w < 4; w++) if ((words[w] & ~maskWord(bits, w)) !== 0) return true;
  return false;
}

/**
 * Parses "addr/bits" or a bare address (a host prefix). With `strict`, set host bits make it invalid
 * (filter rules); otherwise they are cleared (netip.Prefix semantics). Null on any error.
 */
export function parsePrefixText(text: string, strict: boolean): IpPrefix | null {
  const slash = text.indexOf('/');
  const ip = parseIpWords(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return null;
  const max = ip.version === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const t = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(t) || (t.length > 1 && t[0] === '0')) return null;
    bits = Number(t);
    if (bits > max) return null;
  }
  if (hasHostBits(ip.words, bits)) {
    if (strict) return null;
    for (let w = 0; w < 4; w++) ip.words[w] &= maskWord(bits, w);
  }
  return { version: ip.version, words: ip.words, bits };
}

function toBig(words: Uint32Array, version: 4 | 6): bigint {
  if (version === 4) return BigInt(words[0]);
  let v = 0n;
  for (let w = 0; w < 4; w++) v = (v << 32n) | BigInt(words[w]);
  return v;
}

function fromBig(v: bigint, version: 4 | 6): Uint32Array {
  const words = new Uint32Array(4);
  if (version === 4) words[0] = Number(v);
  else for (let w = 3; w >= 0; w--, v >>= 32n) words[w] = Number(v & 0xffffffffn);
  return words;
}

/** "a-b" (inclusive, same family, a <= b) as its minimal list of prefixes; null when invalid. */
export function parseRangeText(text: string): IpPrefix[] | null {
  const dash = text.indexOf('-');
  if (dash < 0 || text.indexOf('-', dash + 1) >= 0) return null;
  const a = parseIpWords(text.slice(0, dash));
  const b = parseIpWords(text.slice(dash + 1));
  if (!a || !b || a.version !== b.version) return null;
  const version = a.version;
  const width = version === 4 ? 32 : 128;
  let lo = toBig(a.words, version);
  const hi = toBig(b.words, version);
  if (lo > hi) return null;
  const out: IpPrefix[] = [];
  while (lo <= hi) {
    // The largest aligned block starting at lo that does not pass hi.
    let size = 0;
    while (size < width && (lo & ((1n << BigInt(size + 1)) - 1n)) === 0n && lo + (1n << BigInt(size + 1)) - 1n <= hi) {
      size++;
    }
    out.push({ version, words: fromBig(lo, version), bits: width - size });
    lo += 1n << BigInt(size);
  }
  return out;
}

/** Whether two prefixes share any address (one contains the other's network address). */
export function prefixesOverlap(a: IpPrefix, b: IpPrefix): boolean {
  if (a.version !== b.version) return false;
  const bits = Math.min(a.bits, b.bits);
  for (let w = 0; w < 4; w++) if (((a.words[w] ^ b.words[w]) & maskWord(bits, w)) !== 0) return false;
  return true;
}

/**
 * Packs prefixes of one family into a flat array: IPv4 entries are [addr, mask, ...extra],
 * IPv6 entries [a0..a3, m0..m3, ...extra]. `extra` carries per-entry data such as a port range.
 */
export function packPrefixes(
  list: ReadonlyArray<{ p: IpPrefix; extra?: readonly number[] }>,
  version: 4 | 6,
): Uint32Array {
  const n = version === 4 ? 1 : 4;
  const extraLen = list.length ? (list[0].extra?.length ?? 0) : 0;
  const stride = 2 * n + extraLen;
  const out = new Uint32Array(list.length * stride);
  list.forEach(({ p, extra }, i) => {
    const base = i * stride;
    for (let w = 0; w < n; w++) {
      out[base + w] = p.words[w];
      out[base + n + w] = maskWord(p.bits, w);
    }
    for (let e = 0; e < extraLen; e++) out[base + 2 * n + e] = extra?.[e] ?? 0;
  });
  return out;
}

/** Whether `ip` is inside any prefix of a packed list with the given stride. Allocation-free. */
export function packedContains(list: Uint32Array, version: 4 | 6, stride: number, ip: Uint32Array): boolean {
  if (version === 4) {
    const a = ip[0];
    for (let i = 0; i < list.length; i += stride) if (((a ^ list[i]) & list[i + 1]) === 0) return true;
    return false;
  }
  for (let i = 0; i < list.length; i += stride) {
    if (
      ((ip[0] ^ list[i]) & list[i + 4]) === 0 &&
      ((ip[1] ^ list[i + 1]) & list[i + 5]) === 0 &&
      ((ip[2] ^ list[i + 2]) & list[i + 6]) === 0 &&
      ((ip[3] ^ list[i + 3]) & list[i + 7]) === 0
    ) {
      return true;
    }
  }
  return false;
}

/** An immutable set of prefixes of both families (local addresses, advertised routes, PeerAPI hosts). */
export class AddrSet {
  private readonly v4: Uint32Array;
  private readonly v6: Uint32Array;
  /** Entries that did not parse and were skipped. */
  readonly invalid: number;

  constructor(prefixes: readonly (string | IpPrefix)[] = []) {
    const four: { p: IpPrefix }[] = [];
    const six: { p: IpPrefix }[] = [];
    let invalid = 0;
    for (const entry of prefixes) {
      const p = typeof entry === 'string' ? parsePrefixText(entry, false) : entry;
      if (!p) invalid++;
      else (p.version === 4 ? four : six).push({ p });
    }
    this.v4 = packPrefixes(four, 4);
    this.v6 = packPrefixes(six, 6);
    this.invalid = invalid;
  }

  get empty(): boolean {
    return this.v4.length === 0 && this.v6.length === 0;
  }

  /** Membership test on address words (as in PacketInfo.src/dst). */
  has(version: 4 | 6, ip: Uint32Array): boolean {
    return version === 4 ? packedContains(this.v4, 4, 2, ip) : packedContains(this.v6, 6, 8, ip);
  }

  /** Membership test on a textual address; false when it does not parse. */
  hasText(text: string): boolean {
    const ip = parseIpWords(text);
    return ip !== null && this.has(ip.version, ip.words);
  }
}
