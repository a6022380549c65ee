// WireGuard's primitives (whitepaper §5.4). Handshake-rate work uses @noble/*, which also runs where node:crypto
// lacks chacha20-poly1305 (Electron's BoringSSL); the per-packet transport AEAD is crypto/aead.ts (libsodium).
import { randomBytes } from 'node:crypto';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';

export const KEY_LEN = 32;
export const TAG_LEN = 16;
export const MAC_LEN = 16;

export class CryptoError extends Error {
  override readonly name = 'CryptoError';
}

/** HASH(parts…) = BLAKE2s-256 over the concatenation. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ dkLen: 32 });
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, msg) = keyed BLAKE2s with a 16-byte output (native keying, not HMAC). */
export function mac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  return blake2s(msg, { key, dkLen: MAC_LEN });
}

function hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = hmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** HKDF with HMAC-BLAKE2s, returning the first n of T1, T2, T3. */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(prk, ONE);
  if (n === 1) return [t1];
  const t2 = hmacBlake2s(prk, t1, TWO);
  if (n === 2) return [t1, t2];
  return [t1, t2, hmacBlake2s(prk, t2, THREE)];
}

export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generatePrivateKey(): Uint8Array {
  const k = new Uint8Array(randomBytes(32));
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(privateKey);
}

export function generateKeyPair(): KeyPair {
  const privateKey = generatePrivateKey();
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** X25519; an all-zero result (low-order point) is rejected as the whitepaper requires. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(privateKey, publicKey);
  } catch {
    throw new CryptoError('X25519 produced an invalid shared secret');
  }
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) throw new CryptoError('X25519 shared secret is zero');
  return shared;
}

function nonce96(counter: bigint): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, counter, true);
  return n;
}

/** AEAD(k, counter, plaintext, ad) = ChaCha20-Poly1305 per RFC 8439; returns ciphertext‖tag. */
export function aeadSeal(key: Uint8Array, counter: bigint, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return chacha20poly1305(key, nonce96(counter), ad).encrypt(plaintext);
}

/** Opens ciphertext‖tag; throws CryptoError when authentication fails. */
export function aeadOpen(key: Uint8Array, counter: bigint, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  if (sealed.length < TAG_LEN) throw new CryptoError('sealed message shorter than its tag');
  try {
    return chacha20poly1305(key, nonce96(counter), ad).decrypt(sealed);
  } catch {
    throw new CryptoError('AEAD authentication failed');
  }
}

/** XAEAD: XChaCha20-Poly1305 (cookie replies only). */
export function xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

export function xaeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(sealed);
  } catch {
    throw new CryptoError('XAEAD authentication failed');
  }
}

/** Constant-time comparison of equal-length byte strings. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i] ^ b[i];
  return acc === 0;
}

export function isZero(a: Uint8Array): boolean {
  let acc = 0;
  for (const b of a) acc |= b;
  return acc === 0;
}

export function randomIndex(): number {
  return randomBytes(4).readUInt32LE(0);
}
