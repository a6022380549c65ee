// The few libsodium functions the engine calls, typed, from sodium-native (CommonJS, no types of its own). It is
// required through createRequire so that a missing or unloadable addon is an error we catch here, not a failed
// import of the whole engine: aead.ts then falls back to @noble/ciphers. The esbuild bundle leaves this require
// alone, so the app resolves sodium-native at run time like any other node_modules package.
import { createRequire } from 'node:module';

/**
 * libsodium's IETF ChaCha20-Poly1305 (RFC 8439), detached tag, as sodium-native's native binding exposes it. The
 * binding is called directly, not through the package's JavaScript wrapper: the wrapper's argument checks cost a
 * third of a small packet's AEAD time, and aead.ts checks every size once itself. The binding aborts the process on
 * a wrong size (a C assert), so nothing may call it without those checks. In place when `c` and `m` are the same.
 */
export interface SodiumAead {
  /** Encrypts m into c and writes the 16-byte tag to mac; returns the tag length. */
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: Uint8Array,
    mac: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | undefined,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  /** Verifies mac over c and ad, then decrypts c into m: 0, or -1 when it does not verify (m zeroed then). */
  crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    m: Uint8Array,
    c: Uint8Array,
    mac: Uint8Array,
    ad: Uint8Array | undefined,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
}

export type SodiumLoad = { ok: true; sodium: SodiumAead } | { ok: false; reason: string };

/** Loads sodium-native's binding once; never throws. */
export function loadSodium(): SodiumLoad {
  try {
    const mod: unknown = createRequire(import.meta.url)('sodium-native/binding.js');
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
