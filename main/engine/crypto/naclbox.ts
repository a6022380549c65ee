// NaCl crypto_box (curve25519xsalsa20poly1305): X25519, then HSalsa20 over the shared point with a zero
// nonce (crypto_box_beforenm), then XSalsa20-Poly1305 (secretbox). Boxes are tag(16) ‖ ciphertext, as NaCl's
// crypto_box_easy, tweetnacl's box and Go's box.Seal write them. Tailscale's sealed form (DERP ClientInfo and
// ServerInfo, disco) is nonce(24) ‖ box (docs/protocol/datapath.md §0). Pure: no I/O.
import { randomBytes } from 'node:crypto';
import { hsalsa, xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { x25519 } from '@noble/curves/ed25519.js';

export const BOX_KEY_LEN = 32;
export const BOX_NONCE_LEN = 24;
export const BOX_OVERHEAD = 16;

export class NaclBoxError extends Error {
  override readonly name = 'NaclBoxError';
}

/** "expand 32-byte k" */
const SIGMA = new Uint8Array([101, 120, 112, 97, 110, 100, 32, 51, 50, 45, 98, 121, 116, 101, 32, 107]);

/** A native-order word view of a copy of `bytes` (hsalsa normalises word order on big-endian hosts). */
const words = (bytes: Uint8Array): Uint32Array => new Uint32Array(Uint8Array.from(bytes).buffer);

function checkLen(what: string, b: Uint8Array, len: number): void {
  if (!(b instanceof Uint8Array) || b.length !== len) {
    throw new NaclBoxError(`${what} must be ${len} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
  }
}

/** crypto_box_beforenm: HSalsa20(key = X25519(myPrivate, theirPublic), nonce = 16 zero bytes). */
export function boxBeforenm(theirPublic: Uint8Array, myPrivate: Uint8Array): Uint8Array {
  checkLen('public key', theirPublic, BOX_KEY_LEN);
  checkLen('private key', myPrivate, BOX_KEY_LEN);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(myPrivate, theirPublic);
  } catch {
    throw new NaclBoxError('X25519 with this public key gives no shared secret (low-order point)');
  }
  const out = new Uint32Array(8);
  hsalsa(words(SIGMA), words(shared), new Uint32Array(4), out);
  shared.fill(0);
  return new Uint8Array(out.buffer);
}

/** crypto_box_afternm (easy layout): tag ‖ ciphertext. */
export function boxSealAfter(key: Uint8Array, nonce: Uint8Array, message: Uint8Array): Uint8Array {
  checkLen('box key', key, BOX_KEY_LEN);
  checkLen('nonce', nonce, BOX_NONCE_LEN);
  return xsalsa20poly1305(key, nonce).encrypt(message);
}

/** crypto_box_open_afternm; throws NaclBoxError when the box does not authenticate. */
export function boxOpenAfter(key: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array {
  checkLen('box key', key, BOX_KEY_LEN);
  checkLen('nonce', nonce, BOX_NONCE_LEN);
  if (box.length < BOX_OVERHEAD) throw new NaclBoxError(`box of ${box.length} bytes is shorter than its tag`);
  try {
    return xsalsa20poly1305(key, nonce).decrypt(box);
  } catch {
    throw new NaclBoxError('box does not authenticate (wrong key, nonce or tampered bytes)');
  }
}

export function boxSeal(
  message: Uint8Array,
  nonce: Uint8Array,
  theirPublic: Uint8Array,
  myPrivate: Uint8Array,
): Uint8Array {
  return boxSealAfter(boxBeforenm(theirPublic, myPrivate), nonce, message);
}

export function boxOpen(
  box: Uint8Array,
  nonce: Uint8Array,
  theirPublic: Uint8Array,
  myPrivate: Uint8Array,
): Uint8Array {
  return boxOpenAfter(boxBeforenm(theirPublic, myPrivate), nonce, box);
}

/**
 * A box between two fixed keys with the shared key computed once (what disco caches per peer).
 * seal/open use Tailscale's sealed form: nonce(24) ‖ tag(16) ‖ ciphertext.
 */
export class SharedBox {
  private readonly key: Uint8Array;

  constructor(theirPublic: Uint8Array, myPrivate: Uint8Array) {
    this.key = boxBeforenm(theirPublic, myPrivate);
  }

  /** nonce ‖ box; the nonce is random unless given (tests). */
  seal(message: Uint8Array, nonce: Uint8Array = new Uint8Array(randomBytes(BOX_NONCE_LEN))): Uint8Array {
    const box = boxSealAfter(this.key, nonce, message);
    const out = new Uint8Array(BOX_NONCE_LEN + box.length);
    out.set(nonce, 0);
    out.set(box, BOX_NONCE_LEN);
    return out;
  }

  /** Opens nonce ‖ box; throws NaclBoxError if it is short or does not authenticate. */
  open(sealed: Uint8Array): Uint8Array {
    if (sealed.length < BOX_NONCE_LEN + BOX_OVERHEAD) {
      throw new NaclBoxError(`sealed box of ${sealed.length} bytes is shorter than nonce and tag`);
    }
    return boxOpenAfter(this.key, sealed.subarray(0, BOX_NONCE_LEN), sealed.subarray(BOX_NONCE_LEN));
  }
}

/** One-shot Tailscale-form seal (nonce ‖ box) from myPrivate to theirPublic. */
export function sealTo(
  message: Uint8Array,
  theirPublic: Uint8Array,
  myPrivate: Uint8Array,
  nonce?: Uint8Array,
): Uint8Array {
  return new SharedBox(theirPublic, myPrivate).seal(message, nonce);
}

/** One-shot open of a Tailscale-form box (nonce ‖ box) that theirPublic sealed to myPrivate. */
export function openFrom(sealed: Uint8Array, theirPublic: Uint8Array, myPrivate: Uint8Array): Uint8Array {
  return new SharedBox(theirPublic, myPrivate).open(sealed);
}
