// The Internet checksum (RFC 1071), in the pieces the packet builders and the TUN offloads (TSO split, TCP
// coalescing) share: a running sum of 16-bit words, its fold, the field value. Long runs go to the native addon
// (native/src/checksum.cc) when it loads: the userspace stack sums every segment it sends or receives.
import { loadNativeAddon, type NativeAddon } from '../tun/native.ts';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** From this many bytes on the native sum is cheaper than the call into it; below, JavaScript is. */
const NATIVE_FROM = 256;

type NativeSum16 = NativeAddon['sum16'];
/** The addon's sum16; null once it is known not to load (then JavaScript does it all). */
let nativeSum: NativeSum16 | null | undefined;

function loadNativeSum(): NativeSum16 | null {
  try {
    nativeSum = loadNativeAddon().sum16; // the loader refuses a build without it as stale
  } catch {
    nativeSum = null;
  }
  return nativeSum;
}

/** acc plus the big-endian 16-bit words of b[from, to); an odd last byte is the high half of a word. */
export function sum16(b: Uint8Array, from = 0, to = b.length, acc = 0): number {
  if (to - from >= NATIVE_FROM) {
    const f = nativeSum === undefined ? loadNativeSum() : nativeSum;
    // The native sum comes folded to 16 bits: the same value modulo 0xffff, which is all a sum16 promises.
    if (f) return acc + f(b, from, to);
  }
  return sum16Portable(b, from, to, acc);
}

/** sum16 in JavaScript alone (short runs, and wherever the addon cannot load). */
export function sum16Portable(b: Uint8Array, from = 0, to = b.length, acc = 0): number {
  let s = acc;
  let i = from;
  // Long runs at an even address: add 32-bit words in host order, four bytes a step. Modulo 0xffff a 32-bit word
  // is the sum of its two 16-bit halves, and a host-order (little-endian) sum is the network-order one byte-swapped.
  if (to - i >= 64 && ((b.byteOffset + i) & 1) === 0) {
    if (((b.byteOffset + i) & 2) !== 0) {
      s += (b[i] << 8) | b[i + 1];
      i += 2;
    }
    const words = (to - i) >>> 2;
    const w = new Int32Array(b.buffer, b.byteOffset + i, words);
    let lo = 0;
    let hi = 0;
    let k = 0;
    for (; k + 4 <= words; k += 4) {
      const w0 = w[k];
      const w1 = w[k + 1];
      const w2 = w[k + 2];
      const w3 = w[k + 3];
      lo += (w0 & 0xffff) + (w1 & 0xffff) + (w2 & 0xffff) + (w3 & 0xffff);
      hi += (w0 >>> 16) + (w1 >>> 16) + (w2 >>> 16) + (w3 >>> 16);
    }
    for (; k < words; k++) {
      lo += w[k] & 0xffff;
      hi += w[k] >>> 16;
    }
    const f = fold(lo + hi);
    s += LITTLE_ENDIAN ? ((f & 0xff) << 8) | (f >>> 8) : f;
    i += words << 2;
  }
  const even = to - ((to - i) & 1);
  for (; i < even; i += 2) s += (b[i] << 8) | b[i + 1];
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
