// Per-packet cost of ChaCha20-Poly1305 for one TUN-MTU packet, as each implementation is used per packet: libsodium
// through sodium-native in place (what the transport runs), the @noble/ciphers fallback in place through the same
// interface (what runs when the addon cannot load), and node:crypto with one cipher context and its output buffers
// per packet (OpenSSL, for reference; Electron's BoringSSL has no chacha20-poly1305). Measured on the quiet machine
// before a lab starts, so the tailnet report can set the daemons' CPU per packet against the AEAD alone.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { type AeadImplementation, createAead, TAG_BYTES } from '../../main/engine/crypto/aead.ts';
import { median } from './common.ts';

export interface AeadCost {
  impl: AeadImplementation | 'openssl';
  /** µs per packet, median of the rounds. */
  sealUs: number;
  openUs: number;
}

export const AEAD_LABEL: Record<AeadCost['impl'], string> = {
  libsodium: 'libsodium (sodium-native, in place)',
  noble: '@noble/ciphers (the fallback, in place)',
  openssl: 'node:crypto (OpenSSL), a context per packet',
};

interface Impl {
  seal: (i: number) => void;
  open: () => void;
}

function timeUs(count: number, fn: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / 1000 / count;
}

/** The engine's AEAD as the transport uses it: the packet copied into its message once, sealed and opened there. */
function inPlace(impl: AeadImplementation, key: Uint8Array, packet: Uint8Array): Impl {
  const aead = createAead(key, impl);
  const bytes = packet.length;
  const nonce = new Uint8Array(12);
  const msg = Buffer.alloc(16 + bytes + TAG_BYTES);
  const sealed = Buffer.alloc(msg.length);
  sealed.set(packet, 16);
  aead.seal(sealed, 16, bytes, nonce);
  const view = new DataView(nonce.buffer);
  return {
    seal: (i) => {
      msg.set(packet, 16);
      view.setUint32(4, i, true);
      aead.seal(msg, 16, bytes, nonce);
    },
    open: () => {
      msg.set(sealed); // opening decrypts in place, so each round starts from the sealed copy
      view.setUint32(4, 0, true);
      if (!aead.open(msg, 16, bytes, nonce)) throw new Error(`bench: ${impl} failed to open its own message`);
    },
  };
}

/** Seal and open cost per `bytes`-byte packet; `rounds` timed rounds of `count` packets after a warm-up. */
export function measureAead(bytes: number, rounds = 5, count = 20_000): AeadCost[] {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const packet = randomBytes(bytes);
  const opts = { authTagLength: TAG_BYTES } as const;

  const c = createCipheriv('chacha20-poly1305', key, nonce, opts);
  const osslBody = c.update(packet);
  c.final();
  const osslTag = c.getAuthTag();
  const openssl: Impl = {
    seal: (i) => {
      nonce.writeUInt32LE(i, 4);
      const x = createCipheriv('chacha20-poly1305', key, nonce, opts);
      const body = x.update(packet);
      x.final();
      const out = Buffer.allocUnsafe(16 + body.length + TAG_BYTES);
      out.set(body, 16);
      out.set(x.getAuthTag(), 16 + body.length);
    },
    open: () => {
      nonce.writeUInt32LE(0, 4);
      const d = createDecipheriv('chacha20-poly1305', key, nonce, opts);
      d.setAuthTag(osslTag);
      d.update(osslBody);
      d.final();
    },
  };

  const impls: [AeadCost['impl'], Impl][] = [
    ['libsodium', inPlace('libsodium', key, packet)],
    ['noble', inPlace('noble', key, packet)],
    ['openssl', openssl],
  ];
  const out: AeadCost[] = [];
  for (const [impl, f] of impls) {
    const n = impl === 'noble' ? Math.ceil(count / 4) : count;
    timeUs(n, f.seal);
    timeUs(n, f.open);
    const seal: number[] = [];
    const open: number[] = [];
    for (let r = 0; r < rounds; r++) {
      seal.push(timeUs(n, f.seal));
      open.push(timeUs(n, f.open));
    }
    out.push({ impl, sealUs: median(seal), openUs: median(open) });
  }
  return out;
}
