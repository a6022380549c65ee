// The Internet checksum (RFC 1071), in the pieces the packet builders and the TUN offloads (TSO split, TCP
// coalescing) share: a running sum of 16-bit words, its fold, the field value.

/** acc plus the big-endian 16-bit words of b[from, to); an odd last byte is the high half of a word. */
export function sum16(b: Uint8Array, from = 0, to = b.length, acc = 0): number {
  let s = acc;
  const even = to - ((to - from) & 1);
  for (let i = from; i < even; i += 2) s += (b[i] << 8) | b[i + 1];
  if (even < to) s += b[even] << 8;
  return s;
}

/** Folds a sum of 16-bit words (any size below 2^53) to 16 bits with end-around carry. */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The Internet checksum of `b`: the field value, with an optional running sum from a pseudo-header. */
export function internetChecksum(b: Uint8Array, initial = 0): number {
  return ~fold(sum16(b, 0, b.length, initial)) & 0xffff;
}
