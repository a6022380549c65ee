// ChaCha20-Poly1305 (RFC 8439) for the per-packet paths: WireGuard transport messages and ts2021 records. The engine
// writes no cipher of its own: libsodium through sodium-native does the work, in place; @noble/ciphers is the
// fallback when the addon cannot load (or TRELLIS_AEAD=noble asks for it), and the engine's status says which runs.
//
// In place means a message is sealed and opened inside the buffer that carries it: sealing encrypts
// buf[at, at+len) where it lies and writes the tag right after it; opening checks that tag and decrypts there.
// sodium-native takes whole typed arrays, not offsets, so seal/open make two subarray views (data and tag) per
// call — small, short-lived objects; libsodium itself allocates nothing. sealDetached/openDetached take those views
// ready-made, for callers that keep them per buffer slot (the WireGuard hot path): then nothing is allocated per
// message. The nonce is the caller's preallocated 12 bytes.
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { loadSodium, type SodiumAead } from './sodium.ts';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

export type AeadImplementation = 'libsodium' | 'noble';

export interface Aead {
  readonly implementation: AeadImplementation;
  /**
   * Encrypts buf[at, at+len) in place under the 12-byte nonce and writes the 16-byte tag at buf[at+len, at+len+16),
   * which must exist.
   */
  seal(buf: Uint8Array, at: number, len: number, nonce: Uint8Array, aad?: Uint8Array): void;
  /**
   * Checks the tag at buf[at+len, at+len+16) over the ciphertext buf[at, at+len) and the AAD and, only if it is
   * authentic, decrypts that range in place and returns true. On false no plaintext was produced, but the range's
   * bytes are not kept: libsodium zeroes them, noble leaves them. Callers drop a message that does not open.
   */
  open(buf: Uint8Array, at: number, len: number, nonce: Uint8Array, aad?: Uint8Array): boolean;
  /** seal() on ready-made views: encrypts `data` in place and writes its 16-byte tag into `tag`. */
  sealDetached(data: Uint8Array, tag: Uint8Array, nonce: Uint8Array, aad?: Uint8Array): void;
  /** open() on ready-made views: checks `tag` over `data` (and the AAD), then decrypts `data` in place. */
  openDetached(data: Uint8Array, tag: Uint8Array, nonce: Uint8Array, aad?: Uint8Array): boolean;
}

const forced = process.env.TRELLIS_AEAD === 'noble';
const loaded = forced ? undefined : loadSodium();
const sodium: SodiumAead | undefined = loaded?.ok ? loaded.sodium : undefined;
const fallbackReason = forced ? 'TRELLIS_AEAD=noble' : loaded && !loaded.ok ? loaded.reason : undefined;

/** Which implementation createAead() gives by default: libsodium whenever sodium-native loaded. */
export function aeadImplementation(): AeadImplementation {
  return sodium ? 'libsodium' : 'noble';
}

/** Why the fallback runs (undefined while libsodium does). */
export function aeadFallbackReason(): string | undefined {
  return sodium ? undefined : fallbackReason;
}

/** An AEAD under `key` (copied). Asking for libsodium when it did not load is an error. */
export function createAead(key: Uint8Array, implementation: AeadImplementation = aeadImplementation()): Aead {
  if (key.length !== KEY_BYTES) throw new RangeError(`ChaCha20-Poly1305 key must be ${KEY_BYTES} bytes`);
  if (implementation === 'noble') return new NobleAead(Uint8Array.from(key));
  if (!sodium) throw new Error(`libsodium is not available (${fallbackReason})`);
  return new SodiumChaCha(sodium, Uint8Array.from(key));
}

/** A range outside the buffer is the caller's bug; subarray would silently clamp it, so check first. */
function checkRange(buf: Uint8Array, at: number, len: number, nonce: Uint8Array): void {
  if (!Number.isInteger(at) || !Number.isInteger(len) || at < 0 || len < 0 || at + len + TAG_BYTES > buf.length) {
    throw new RangeError(`AEAD range [${at}, ${at}+${len}+${TAG_BYTES}) is outside a ${buf.length}-byte buffer`);
  }
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`ChaCha20-Poly1305 nonce must be ${NONCE_BYTES} bytes`);
}

function checkDetached(tag: Uint8Array, nonce: Uint8Array): void {
  if (tag.length !== TAG_BYTES) throw new RangeError(`ChaCha20-Poly1305 tag must be ${TAG_BYTES} bytes`);
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`ChaCha20-Poly1305 nonce must be ${NONCE_BYTES} bytes`);
}

class SodiumChaCha implements Aead {
  readonly implementation = 'libsodium';

  constructor(
    private readonly s: SodiumAead,
    private readonly key: Uint8Array,
  ) {}

  seal(buf: Uint8Array, at: number, len: number, nonce: Uint8Array, aad?: Uint8Array): void {
    checkRange(buf, at, len, nonce);
    this.sealDetached(buf.subarray(at, at + len), buf.subarray(at + len, at + len + TAG_BYTES), nonce, aad);
  }

  open(buf: Uint8Array, at: number, len: number, nonce: Uint8Array, aad?: Uint8Array): boolean {
    checkRange(buf, at, len, nonce);
    return this.openDetached(buf.subarray(at, at + len), buf.subarray(at + len, at + len + TAG_BYTES), nonce, aad);
  }

  sealDetached(data: Uint8Array, tag: Uint8Array, nonce: Uint8Array, aad?: Uint8Array): void {
    checkDetached(tag, nonce);
    // c and m are the same bytes: libsodium documents in-place encryption (c == m) as supported.
    this.s.crypto_aead_chacha20poly1305_ietf_encrypt_detached(data, tag, data, aad, nonce, this.key);
  }

  openDetached(data: Uint8Array, tag: Uint8Array, nonce: Uint8Array, aad?: Uint8Array): boolean {
    checkDetached(tag, nonce);
    // The tag is checked before any byte is decrypted; libsodium zeroes the bytes of one that does not verify.
    return this.s.crypto_aead_chacha20poly1305_ietf_decrypt_detached(data, data, tag, aad, nonce, this.key) === 0;
  }
}

/** The fallback. noble allocates a cipher object and its Poly1305 state per call: slower, but no addon needed. */
class NobleAead implements Aead {
  readonly implementation = 'noble';

  constructor(private readonly key: Uint8Array) {}

  seal(buf: Uint8Array, at: number, len: number, nonce: Uint8Array, aad?: Uint8Array): void {
    checkRange(buf, at, len, nonce);
    // Output starting where the input starts is the overlap noble supports.
    chacha20poly1305(this.key, nonce, aad).encrypt(buf.subarray(at, at + len), buf.subarray(at, at + len + TAG_BYTES));
  }

  open(buf: Uint8Array, at: number, len: number, nonce: Uint8Array, aad?: Uint8Array): boolean {
    checkRange(buf, at, len, nonce);
    try {
      // noble compares tags before it writes the output, so a forged message leaves the buffer as it was.
      chacha20poly1305(this.key, nonce, aad).decrypt(
        buf.subarray(at, at + len + TAG_BYTES),
        buf.subarray(at, at + len),
      );
      return true;
    } catch {
      return false;
    }
  }

  sealDetached(data: Uint8Array, tag: Uint8Array, nonce: Uint8Array, aad?: Uint8Array): void {
    checkDetached(tag, nonce);
    const sealed = chacha20poly1305(this.key, nonce, aad).encrypt(data);
    data.set(sealed.subarray(0, data.length));
    tag.set(sealed.subarray(data.length));
  }

  openDetached(data: Uint8Array, tag: Uint8Array, nonce: Uint8Array, aad?: Uint8Array): boolean {
    checkDetached(tag, nonce);
    const sealed = new Uint8Array(data.length + TAG_BYTES);
    sealed.set(data);
    sealed.set(tag, data.length);
    try {
      chacha20poly1305(this.key, nonce, aad).decrypt(sealed, data);
      return true;
    } catch {
      return false;
    }
  }
}
