// NaCl crypto_box for disco (docs/protocol/datapath.md §0): the same primitive DERP's ClientInfo uses, implemented once
// in crypto/naclbox.ts. This adapter gives disco its shape: a precomputed key per peer, and open() that
// returns null instead of throwing, since failed boxes from the network are routine.
import {
  BOX_KEY_LEN,
  BOX_NONCE_LEN,
  BOX_OVERHEAD,
  boxBeforenm,
  boxOpenAfter,
  boxSealAfter,
  NaclBoxError,
} from '../crypto/naclbox.ts';

export const KEY_BYTES = BOX_KEY_LEN;
export const NONCE_BYTES = BOX_NONCE_LEN;
export const TAG_BYTES = BOX_OVERHEAD;

export class BoxError extends Error {
  override readonly name = 'BoxError';
}

/** crypto_box_beforenm: the symmetric key between two keys (either direction). Cache it per peer. */
export function precompute(priv: Uint8Array, peerPub: Uint8Array): Uint8Array {
  try {
    return boxBeforenm(peerPub, priv);
  } catch (e) {
    throw new BoxError(e instanceof NaclBoxError ? e.message : String(e));
  }
}

/** Seals with a precomputed key: tag ‖ ciphertext. */
export function sealWithKey(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  try {
    return boxSealAfter(key, nonce, plaintext);
  } catch (e) {
    throw new BoxError(e instanceof NaclBoxError ? e.message : String(e));
  }
}

/** Opens with a precomputed key; null when the box does not authenticate or is malformed. */
export function openWithKey(key: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null {
  try {
    return boxOpenAfter(key, nonce, box);
  } catch {
    return null;
  }
}

export function boxSeal(priv: Uint8Array, peerPub: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return sealWithKey(precompute(priv, peerPub), nonce, plaintext);
}

export function boxOpen(priv: Uint8Array, peerPub: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null {
  let key: Uint8Array;
  try {
    key = precompute(priv, peerPub);
  } catch {
    return null;
  }
  return openWithKey(key, nonce, box);
}
