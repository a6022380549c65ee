// ChaCha20-Poly1305 (RFC 8439) in TypeScript, in place and without allocating per message: the transport hot path
// seals into its send buffer and opens in the receive buffer. It also runs where node:crypto has no
// chacha20-poly1305 at all (Electron's BoringSSL). Poly1305 keeps its accumulator in six 22-bit limbs held as
// doubles: every partial product sum stays below 2^53, so the arithmetic is exact without 64-bit integers.
// No table lookups and no data-dependent branches on secrets (the final tag compare is constant time).

export const KEY_BYTES = 32;
export const TAG_BYTES = 16;

const SIGMA0 = 0x61707865;
const SIGMA1 = 0x3320646e;
const SIGMA2 = 0x79622d32;
const SIGMA3 = 0x6b206574;

const LIMB = 4194304; // 2^22
const INV_LIMB = 1 / LIMB;
const MASK22 = 0x3fffff;
const TWO32 = 4294967296;

const EMPTY = new Uint8Array(0);
/** Words are read through Int32Arrays, which use the host's byte order; every supported platform is LE. */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

export class ChaCha20Poly1305 {
  private readonly k = new Int32Array(8);
  /** One keystream block, little-endian words. */
  private readonly ks = new Int32Array(16);
  private readonly ksBytes = new Uint8Array(this.ks.buffer);
  /** Poly1305 state: r limbs, 20·r limbs, s words, accumulator limbs. */
  private readonly r = new Float64Array(6);
  private readonly r20 = new Float64Array(6);
  private readonly s = new Float64Array(4);
  private readonly h = new Float64Array(6);
  private readonly block16 = new Uint8Array(16);
  private readonly block16Words = new Int32Array(this.block16.buffer);
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
    checkRange(buf, at, len + TAG_BYTES);
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
    checkRange(buf, at, len + TAG_BYTES);
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

  /** Block 0 of the keystream gives the one-time Poly1305 key: r (clamped) and s. */
  private polyKey(n0: number, n1: number, n2: number): void {
    this.block(0, n0, n1, n2);
    const ks = this.ks;
    const t0 = ks[0] & 0x0fffffff;
    const t1 = ks[1] & 0x0ffffffc;
    const t2 = ks[2] & 0x0ffffffc;
    const t3 = ks[3] & 0x0ffffffc;
    const r = this.r;
    r[0] = t0 & MASK22;
    r[1] = ((t0 >>> 22) | (t1 << 10)) & MASK22;
    r[2] = ((t1 >>> 12) | (t2 << 20)) & MASK22;
    r[3] = (t2 >>> 2) & MASK22;
    r[4] = ((t2 >>> 24) | (t3 << 8)) & MASK22;
    r[5] = t3 >>> 14;
    for (let i = 0; i < 6; i++) this.r20[i] = r[i] * 20;
    const s = this.s;
    for (let i = 0; i < 4; i++) s[i] = ks[4 + i] >>> 0;
    this.h.fill(0);
  }

  /** The AEAD's Poly1305 over aad‖pad‖ciphertext‖pad‖lengths, into this.tag. */
  private mac(region: Uint8Array, len: number, aad: Uint8Array): void {
    if (aad.length > 0) this.polyBytes(aad, aad.length);
    this.polyBytes(region, len);
    const b = this.block16Words;
    b[0] = aad.length;
    b[1] = Math.floor(aad.length / TWO32);
    b[2] = len;
    b[3] = Math.floor(len / TWO32);
    this.polyBlocks(b, 0, 1);
    this.finish();
  }

  /** Absorbs data[0, len), zero-padded to whole 16-byte blocks (the AEAD's padding). */
  private polyBytes(data: Uint8Array, len: number): void {
    const full = len >>> 4;
    if ((data.byteOffset & 3) === 0) {
      if (full > 0) this.polyBlocks(new Int32Array(data.buffer, data.byteOffset, full * 4), 0, full);
    } else {
      for (let i = 0; i < full; i++) {
        this.block16.set(data.subarray(i * 16, i * 16 + 16));
        this.polyBlocks(this.block16Words, 0, 1);
      }
    }
    const rest = len & 15;
    if (rest > 0) {
      const b = this.block16;
      b.fill(0);
      b.set(data.subarray(full * 16, len));
      this.polyBlocks(this.block16Words, 0, 1);
    }
  }

  /** h = (h + m) · r mod 2^130−5 for `count` full blocks m starting at word `at` (high bit 2^128 set). */
  private polyBlocks(words: Int32Array, at: number, count: number): void {
    const r = this.r;
    const r0 = r[0];
    const r1 = r[1];
    const r2 = r[2];
    const r3 = r[3];
    const r4 = r[4];
    const r5 = r[5];
    const q = this.r20;
    const q1 = q[1];
    const q2 = q[2];
    const q3 = q[3];
    const q4 = q[4];
    const q5 = q[5];
    const h = this.h;
    let h0 = h[0];
    let h1 = h[1];
    let h2 = h[2];
    let h3 = h[3];
    let h4 = h[4];
    let h5 = h[5];
    for (let i = 0, pos = at; i < count; i++, pos += 4) {
      const w0 = words[pos];
      const w1 = words[pos + 1];
      const w2 = words[pos + 2];
      const w3 = words[pos + 3];
      h0 += w0 & MASK22;
      h1 += ((w0 >>> 22) | (w1 << 10)) & MASK22;
      h2 += ((w1 >>> 12) | (w2 << 20)) & MASK22;
      h3 += (w2 >>> 2) & MASK22;
      h4 += ((w2 >>> 24) | (w3 << 8)) & MASK22;
      h5 += (w3 >>> 14) | 0x40000; // bit 128 of the block: 2^(128 − 110)
      // Limbs are below 2^23 and 20·r below 2^26.4, so each sum of six products stays below 2^53. The grouping
      // shortens the chain of dependent additions (floating-point sums are not reassociated for us).
      let d0 = h0 * r0 + h1 * q5 + (h2 * q4 + h3 * q3) + (h4 * q2 + h5 * q1);
      let d1 = h0 * r1 + h1 * r0 + (h2 * q5 + h3 * q4) + (h4 * q3 + h5 * q2);
      let d2 = h0 * r2 + h1 * r1 + (h2 * r0 + h3 * q5) + (h4 * q4 + h5 * q3);
      let d3 = h0 * r3 + h1 * r2 + (h2 * r1 + h3 * r0) + (h4 * q5 + h5 * q4);
      let d4 = h0 * r4 + h1 * r3 + (h2 * r2 + h3 * r1) + (h4 * r0 + h5 * q5);
      let d5 = h0 * r5 + h1 * r4 + (h2 * r3 + h3 * r2) + (h4 * r1 + h5 * r0);
      // Two rounds of carries, each limb's at once (a chain of six would serialise the block): the first leaves
      // limbs below 2^35, the second below 2^22 + 2^13. 2^132 ≡ 20 (mod 2^130 − 5) wraps limb 5's carry.
      let c0 = Math.floor(d0 * INV_LIMB);
      let c1 = Math.floor(d1 * INV_LIMB);
      let c2 = Math.floor(d2 * INV_LIMB);
      let c3 = Math.floor(d3 * INV_LIMB);
      let c4 = Math.floor(d4 * INV_LIMB);
      let c5 = Math.floor(d5 * INV_LIMB);
      d0 = d0 - c0 * LIMB + c5 * 20;
      d1 = d1 - c1 * LIMB + c0;
      d2 = d2 - c2 * LIMB + c1;
      d3 = d3 - c3 * LIMB + c2;
      d4 = d4 - c4 * LIMB + c3;
      d5 = d5 - c5 * LIMB + c4;
      c0 = Math.floor(d0 * INV_LIMB);
      c1 = Math.floor(d1 * INV_LIMB);
      c2 = Math.floor(d2 * INV_LIMB);
      c3 = Math.floor(d3 * INV_LIMB);
      c4 = Math.floor(d4 * INV_LIMB);
      c5 = Math.floor(d5 * INV_LIMB);
      h0 = d0 - c0 * LIMB + c5 * 20;
      h1 = d1 - c1 * LIMB + c0;
      h2 = d2 - c2 * LIMB + c1;
      h3 = d3 - c3 * LIMB + c2;
      h4 = d4 - c4 * LIMB + c3;
      h5 = d5 - c5 * LIMB + c4;
    }
    h[0] = h0;
    h[1] = h1;
    h[2] = h2;
    h[3] = h3;
    h[4] = h4;
    h[5] = h5;
  }

  /** tag = (h mod 2^130−5) + s mod 2^128. */
  private finish(): void {
    const h = this.h;
    // Normalise the limbs and fold what lies above bit 130 back in (2^130 ≡ 5, 2^132 ≡ 20); three rounds leave
    // h below 2^130 whatever the limbs held.
    for (let round = 0; round < 3; round++) {
      let c = 0;
      for (let i = 0; i < 6; i++) {
        const v = h[i] + c;
        c = Math.floor(v * INV_LIMB);
        h[i] = v - c * LIMB;
      }
      const top = Math.floor(h[5] / 1048576); // bits 130, 131: limb 5 holds bits 110..131
      h[5] -= top * 1048576;
      h[0] += top * 5 + c * 20;
    }
    let c = 0;
    for (let i = 0; i < 6; i++) {
      const v = h[i] + c;
      c = Math.floor(v * INV_LIMB);
      h[i] = v - c * LIMB;
    }
    // If h ≥ p, h + 5 reaches bit 130 and h − p is that sum without it; select it without branching on h.
    const g = this.r20; // scratch: polyKey rebuilds r20 for the next message
    c = 5;
    for (let i = 0; i < 6; i++) {
      const v = h[i] + c;
      c = Math.floor(v * INV_LIMB);
      g[i] = v - c * LIMB;
    }
    const over = Math.floor(g[5] / 1048576);
    g[5] -= over * 1048576;
    for (let i = 0; i < 6; i++) h[i] += over * (g[i] - h[i]);
    const h0 = h[0] | 0;
    const h1 = h[1] | 0;
    const h2 = h[2] | 0;
    const h3 = h[3] | 0;
    const h4 = h[4] | 0;
    const h5 = h[5] | 0;
    const s = this.s;
    const b = this.block16Words; // Int32Array stores wrap modulo 2^32
    let t = ((h0 | (h1 << 22)) >>> 0) + s[0];
    b[0] = t;
    t = (((h1 >>> 10) | (h2 << 12)) >>> 0) + s[1] + (t >= TWO32 ? 1 : 0);
    b[1] = t;
    t = (((h2 >>> 20) | (h3 << 2) | (h4 << 24)) >>> 0) + s[2] + (t >= TWO32 ? 1 : 0);
    b[2] = t;
    t = (((h4 >>> 8) | (h5 << 14)) >>> 0) + s[3] + (t >= TWO32 ? 1 : 0);
    b[3] = t;
    this.tag.set(this.block16);
  }
}

function checkRange(buf: Uint8Array, at: number, need: number): void {
  if (!Number.isInteger(at) || at < 0 || !Number.isInteger(need) || at + need > buf.length) {
    throw new RangeError(`ChaCha20-Poly1305: range ${at}+${need} outside a buffer of ${buf.length} bytes`);
  }
}
