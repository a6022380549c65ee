// The few libsodium functions the engine calls, typed, from sodium-native (CommonJS, no types of its own). It is
// required through createRequire so that a missing or unloadable addon is an error we catch here, not a failed
// import of the whole engine: aead.ts then falls back to @noble/ciphers. The esbuild bundle leaves this require
// alone, so the app resolves sodium-native at run time like any other node_modules package.
import { createRequire } from 'node:module';

/** libsodium's IETF ChaCha20-Poly1305 (RFC 8439), detached tag. In place when `c` and `m` are the same bytes. */
export interface SodiumAead {
  /** Encrypts m into c and writes the 16-byte tag to mac. Throws only on misuse (wrong sizes). */
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: Uint8Array,
    mac: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | null,
    nsec: null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  /** Verifies mac over c and ad, then decrypts c into m; throws when it does not verify (and zeroes m). */
  crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    m: Uint8Array,
    nsec: null,
    c: Uint8Array,
    mac: Uint8Array,
    ad: Uint8Array | null,
    npub: Uint8Array,
    k: Uint8Array,
  ): void;
}

export type SodiumLoad = { ok: true; sodium: SodiumAead } | { ok: false; reason: string };

/** Loads sodium-native once; never throws. */
export function loadSodium(): SodiumLoad {
  try {
    const mod: unknown = createRequire(import.meta.url)('sodium-native');
    const s = mod as Partial<SodiumAead> | null;
    if (
      typeof s?.crypto_aead_chacha20poly1305_ietf_encrypt_detached !== 'function' ||
      typeof s.crypto_aead_chacha20poly1305_ietf_decrypt_detached !== 'function'
    ) {
      return { ok: false, reason: 'sodium-native lacks crypto_aead_chacha20poly1305_ietf_*_detached' };
    }
    return { ok: true, sodium: s as SodiumAead };
  } catch (e) {
    return { ok: false, reason: `sodium-native did not load: ${(e as Error).message.split('\n')[0]}` };
  }
}
