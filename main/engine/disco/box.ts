// NaCl crypto_box (curve25519xsalsa20poly1305) for disco (datapath.md §0). The shared key is
// crypto_box_beforenm: HSalsa20 keyed with the X25519 point, over a 16-byte zero input. A box is
// Poly1305 tag (16) ‖ ciphertext, the layout of NaCl's crypto_box_easy, Go's box.Seal and tweetnacl.
import { hsalsa, xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { x25519 } from '@noble/curves/ed25519.js';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;

export class BoxError extends Error {
  override readonly name = 'BoxError';
}

// The HSalsa20 constant "expand 32-byte k", as native-order words of its bytes (hsalsa expects views of bytes).
const SIGMA_WORDS = new Uint32Array(new TextEncoder().encode('expand 32-byte k').buffer);
const ZERO_INPUT = new Uint32Array(4);

function need(name: string, b: Uint8Array, len: number): void {
  if (!(b instanceof Uint8Array) || b.length !== len) throw new BoxError(`${name} must be ${len} bytes`);
}

/**
 * crypto_box_beforenm(peerPub, priv): the symmetric key for every box between the two keys, in either
 * direction. Cache it per peer. Throws BoxError when peerPub is a low-order point (no shared secret).
 */
export function precompute(priv: Uint8Array, peerPub: Uint8Array): Uint8Array {
  need('private key', priv, KEY_BYTES);
  need('public key', peerPub, KEY_BYTES);
  let point: Uint8Array;
  try {
    point = x25519.getSharedSecret(priv, peerPub);
  } catch {
    throw new BoxError('public key is a low-order point');
  }
  const keyBytes = new Uint8Array(KEY_BYTES); // fresh, so aligned for a word view
  keyBytes.set(point);
  point.fill(0);
  const out = new Uint32Array(8);
  hsalsa(SIGMA_WORDS, new Uint32Array(keyBytes.buffer), ZERO_INPUT, out);
  keyBytes.fill(0);
  return new Uint8Array(out.buffer);
}

/** crypto_box_afternm: seals with a precomputed key. Returns tag ‖ ciphertext. */
export function sealWithKey(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  need('box key', key, KEY_BYTES);
  need('nonce', nonce, NONCE_BYTES);
  return xsalsa20poly1305(key, nonce).encrypt(plaintext);
}

/** crypto_box_open_afternm: the plaintext, or null when the box is short or does not authenticate. */
export function openWithKey(key: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null {
  need('box key', key, KEY_BYTES);
  need('nonce', nonce, NONCE_BYTES);
  if (box.length < TAG_BYTES) return null;
  try {
    return xsalsa20poly1305(key, nonce).decrypt(box);
  } catch {
    return null;
  }
}

/** crypto_box: seals `plaintext` from `priv` to `peerPub`. */
export function boxSeal(priv: Uint8Array, peerPub: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return sealWithKey(precompute(priv, peerPub), nonce, plaintext);
}

/** crypto_box_open: the plaintext, or null when the box does not authenticate or peerPub is low-order. */
export function boxOpen(priv: Uint8Array, peerPub: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null {
  need('private key', priv, KEY_BYTES);
  need('public key', peerPub, KEY_BYTES);
  let key: Uint8Array;
  try {
    key = precompute(priv, peerPub);
  } catch (err) {
    if (err instanceof BoxError) return null;
    throw err;
  }
  return openWithKey(key, nonce, box);
}
