// ChaCha20-Poly1305 (RFC 8439) in TypeScript, in place and without allocating per message: the transport hot path
// seals into its send buffer and opens in the receive buffer. It also runs where node:crypto has no
// chacha20-poly1305 at all (Electron's BoringSSL). Poly1305 is poly1305.ts. No table lookups and no
// data-dependent branches on secrets (the tag compare is constant time).
import { Poly1305 } from './poly1305.ts';

export const KEY_BYTES = 32;
export const TAG_BYTES = 16;

const SIGMA0 = 0x61707865;
const SIGMA1 = 0x3320646e;
const SIGMA2 = 0x79622d32;
const SIGMA3 = 0x6b206574;

const EMPTY = new Uint8Array(0);
/** Words are read through Int32Arrays, which use the host's byte order; every supported platform is LE. */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

export class ChaCha20Poly1305 {
  private readonly k = new Int32Array(8);
  /** One keystream block, little-endian words. */
  private readonly ks = new Int32Array(16);
  private readonly ksBytes = new Uint8Array(this.ks.buffer);
  private readonly poly = new Poly1305();
  private readonly tag = new Uint8Array(TAG_BYTES);
  private scratch = new Uint8Array(0);

  constructor(key: Uint8Array) {
    if (!LITTLE_ENDIAN) throw new Error('ChaCha20Poly1305 needs a little-endian host');
    if (key.length !== KEY_BYTES) throw new RangeError(`ChaCha20-Poly1305 key must be ${KEY_BYTES} bytes`);
    const v = new DataView(key.buffer, key.byteOffset, KEY_BYTES);
    for (let i = 0; i < 8; i++) this.k[i] = v.getInt32(i * 4, true);
  }

  /**
   * Encrypts buf[at, at+len) in place under the 96-bit nonce given as three little-endian words and writes the
   * 16-byte tag at buf[at+len, at+len+16), which must exist.
   */
  seal(buf: Uint8Array, at: number, len: number, n0: number, n1: number, n2: number, aad: Uint8Array = EMPTY): void {
    checkRange(buf, at, len);
    const region = this.alignedRegion(buf, at, len);
    this.polyKey(n0, n1, n2);
    this.xorStream(region, len, n0, n1, n2);
    this.mac(region, len, aad);
    if (region.buffer !== buf.buffer) buf.set(region.subarray(0, len), at);
    buf.set(this.tag, at + len);
  }

  /**
   * Checks the tag at buf[at+len, at+len+16) over the ciphertext buf[at, at+len) and, only if it is authentic,
   * decrypts that range in place. Returns false (buffer untouched) when it is not.
   */
  open(buf: Uint8Array, at: number, len: number, n0: number, n1: number, n2: number, aad: Uint8Array = EMPTY): boolean {
    checkRange(buf, at, len);
    const region = this.alignedRegion(buf, at, len);
    this.polyKey(n0, n1, n2);
    this.mac(region, len, aad);
    let diff = 0;
    const t = this.tag;
    for (let i = 0; i < TAG_BYTES; i++) diff |= t[i] ^ buf[at + len + i];
    if (diff !== 0) return false;
    this.xorStream(region, len, n0, n1, n2);
    if (region.buffer !== buf.buffer) buf.set(region.subarray(0, len), at);
    return true;
  }

  /** buf[at, at+len) itself when it starts on a 4-byte boundary (the hot path's buffers do), else a copy. */
  private alignedRegion(buf: Uint8Array, at: number, len: number): Uint8Array {
    if (((buf.byteOffset + at) & 3) === 0) return buf.subarray(at, at + len);
    if (this.scratch.length < len) this.scratch = new Uint8Array(Math.max(len, 2 * this.scratch.length));
    this.scratch.set(buf.subarray(at, at + len));
    return this.scratch;
  }

  /** One ChaCha20 block for (counter, nonce) into this.ks. */
  private block(counter: number, n0: number, n1: number, n2: number): void {
    const k = this.k;
    const k0 = k[0];
    const k1 = k[1];
    const k2 = k[2];
    const k3 = k[3];
    const k4 = k[4];
    const k5 = k[5];
    const k6 = k[6];
    const k7 = k[7];
    let x0 = SIGMA0;
    let x1 = SIGMA1;
    let x2 = SIGMA2;
    let x3 = SIGMA3;
    let x4 = k0;
    let x5 = k1;
    let x6 = k2;
    let x7 = k3;
    let x8 = k4;
    let x9 = k5;
    let x10 = k6;
    let x11 = k7;
    let x12 = counter | 0;
    let x13 = n0 | 0;
    let x14 = n1 | 0;
    let x15 = n2 | 0;
    // biome-ignore format: a quarter round's four steps on one line each, as RFC 8439 §2.1 writes them
    for (let i = 0; i < 10; i++) {
      // column round
      x0 = (x0 + x4) | 0; x12 ^= x0; x12 = (x12 << 16) | (x12 >>> 16);
      x8 = (x8 + x12) | 0; x4 ^= x8; x4 = (x4 << 12) | (x4 >>> 20);
      x0 = (x0 + x4) | 0; x12 ^= x0; x12 = (x12 << 8) | (x12 >>> 24);
      x8 = (x8 + x12) | 0; x4 ^= x8; x4 = (x4 << 7) | (x4 >>> 25);
      x1 = (x1 + x5) | 0; x13 ^= x1; x13 = (x13 << 16) | (x13 >>> 16);
      x9 = (x9 + x13) | 0; x5 ^= x9; x5 = (x5 << 12) | (x5 >>> 20);
      x1 = (x1 + x5) | 0; x13 ^= x1; x13 = (x13 << 8) | (x13 >>> 24);
      x9 = (x9 + x13) | 0; x5 ^= x9; x5 = (x5 << 7) | (x5 >>> 25);
      x2 = (x2 + x6) | 0; x14 ^= x2; x14 = (x14 << 16) | (x14 >>> 16);
      x10 = (x10 + x14) | 0; x6 ^= x10; x6 = (x6 << 12) | (x6 >>> 20);
      x2 = (x2 + x6) | 0; x14 ^= x2; x14 = (x14 << 8) | (x14 >>> 24);
      x10 = (x10 + x14) | 0; x6 ^= x10; x6 = (x6 << 7) | (x6 >>> 25);
      x3 = (x3 + x7) | 0; x15 ^= x3; x15 = (x15 << 16) | (x15 >>> 16);
      x11 = (x11 + x15) | 0; x7 ^= x11; x7 = (x7 << 12) | (x7 >>> 20);
      x3 = (x3 + x7) | 0; x15 ^= x3; x15 = (x15 << 8) | (x15 >>> 24);
      x11 = (x11 + x15) | 0; x7 ^= x11; x7 = (x7 << 7) | (x7 >>> 25);
      // diagonal round
      x0 = (x0 + x5) | 0; x15 ^= x0; x15 = (x15 << 16) | (x15 >>> 16);
      x10 = (x10 + x15) | 0; x5 ^= x10; x5 = (x5 << 12) | (x5 >>> 20);
      x0 = (x0 + x5) | 0; x15 ^= x0; x15 = (x15 << 8) | (x15 >>> 24);
      x10 = (x10 + x15) | 0; x5 ^= x10; x5 = (x5 << 7) | (x5 >>> 25);
      x1 = (x1 + x6) | 0; x12 ^= x1; x12 = (x12 << 16) | (x12 >>> 16);
      x11 = (x11 + x12) | 0; x6 ^= x11; x6 = (x6 << 12) | (x6 >>> 20);
      x1 = (x1 + x6) | 0; x12 ^= x1; x12 = (x12 << 8) | (x12 >>> 24);
      x11 = (x11 + x12) | 0; x6 ^= x11; x6 = (x6 << 7) | (x6 >>> 25);
      x2 = (x2 + x7) | 0; x13 ^= x2; x13 = (x13 << 16) | (x13 >>> 16);
      x8 = (x8 + x13) | 0; x7 ^= x8; x7 = (x7 << 12) | (x7 >>> 20);
      x2 = (x2 + x7) | 0; x13 ^= x2; x13 = (x13 << 8) | (x13 >>> 24);
      x8 = (x8 + x13) | 0; x7 ^= x8; x7 = (x7 << 7) | (x7 >>> 25);
      x3 = (x3 + x4) | 0; x14 ^= x3; x14 = (x14 << 16) | (x14 >>> 16);
      x9 = (x9 + x14) | 0; x4 ^= x9; x4 = (x4 << 12) | (x4 >>> 20);
      x3 = (x3 + x4) | 0; x14 ^= x3; x14 = (x14 << 8) | (x14 >>> 24);
      x9 = (x9 + x14) | 0; x4 ^= x9; x4 = (x4 << 7) | (x4 >>> 25);
    }
    const ks = this.ks;
    ks[0] = x0 + SIGMA0;
    ks[1] = x1 + SIGMA1;
    ks[2] = x2 + SIGMA2;
    ks[3] = x3 + SIGMA3;
    ks[4] = x4 + k0;
    ks[5] = x5 + k1;
    ks[6] = x6 + k2;
    ks[7] = x7 + k3;
    ks[8] = x8 + k4;
    ks[9] = x9 + k5;
    ks[10] = x10 + k6;
    ks[11] = x11 + k7;
    ks[12] = x12 + counter;
    ks[13] = x13 + n0;
    ks[14] = x14 + n1;
    ks[15] = x15 + n2;
  }

  /** XORs region[0, len) (4-byte aligned) with the keystream from block counter 1. */
  private xorStream(region: Uint8Array, len: number, n0: number, n1: number, n2: number): void {
    const ks = this.ks;
    const words = new Int32Array(region.buffer, region.byteOffset, len >>> 2);
    const full = len >>> 6;
    for (let b = 0, w = 0; b < full; b++, w += 16) {
      this.block(b + 1, n0, n1, n2);
      for (let i = 0; i < 16; i++) words[w + i] ^= ks[i];
    }
    const rest = len & 63;
    if (rest > 0) {
      this.block(full + 1, n0, n1, n2);
      const ksb = this.ksBytes;
      for (let i = 0, pos = full * 64; i < rest; i++, pos++) region[pos] ^= ksb[i];
    }
  }

  /** Block 0 of the keystream is the one-time Poly1305 key. */
  private polyKey(n0: number, n1: number, n2: number): void {
    this.block(0, n0, n1, n2);
    this.poly.reset(this.ks);
  }

  /** The AEAD's Poly1305 over aad‖pad‖ciphertext‖pad‖lengths, into this.tag. */
  private mac(region: Uint8Array, len: number, aad: Uint8Array): void {
    if (aad.length > 0) this.poly.update(aad, aad.length);
    this.poly.update(region, len);
    this.poly.lengths(aad.length, len);
    this.poly.finish(this.tag, 0);
  }
}

/** The message buf[at, at+len) and its tag after it must lie inside buf. */
function checkRange(buf: Uint8Array, at: number, len: number): void {
  if (!Number.isInteger(at) || at < 0 || !Number.isInteger(len) || len < 0 || at + len + TAG_BYTES > buf.length) {
    throw new RangeError(`ChaCha20-Poly1305: ${len} bytes + tag at ${at} do not fit a buffer of ${buf.length}`);
  }
}
