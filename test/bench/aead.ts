// Per-packet cost of ChaCha20-Poly1305 for one TUN-MTU packet, as each implementation is used per packet: Trellis's
// TypeScript one in place (what the transport runs), node:crypto with one cipher context and its output buffers per
// packet (what the transport ran before), and @noble/ciphers (the handshakes' library). Measured on the quiet
// machine before a lab starts, so the tailnet report can set the daemons' CPU per packet against the AEAD alone.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ChaCha20Poly1305, TAG_BYTES } from '../../main/engine/wg/chacha20poly1305.ts';
import { median } from './common.ts';

export interface AeadCost {
  impl: 'trellis' | 'openssl' | 'noble';
  /** µs per packet, median of the rounds. */
  sealUs: number;
  openUs: number;
}

export const AEAD_LABEL: Record<AeadCost['impl'], string> = {
  trellis: 'Trellis (TypeScript, in place)',
  openssl: 'node:crypto (OpenSSL), a context per packet',
  noble: '@noble/ciphers',
};

function timeUs(count: number, fn: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / 1000 / count;
}

/** Seal and open cost per `bytes`-byte packet; `rounds` timed rounds of `count` packets after a warm-up. */
export function measureAead(bytes: number, rounds = 5, count = 20_000): AeadCost[] {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const packet = randomBytes(bytes);
  const opts = { authTagLength: TAG_BYTES } as const;

  const ours = new ChaCha20Poly1305(key);
  const msg = Buffer.alloc(16 + bytes + TAG_BYTES);
  const sealed = Buffer.alloc(msg.length);
  const trellis = {
    seal: (i: number) => {
      msg.set(packet, 16); // the transport copies the packet into its message once
      ours.seal(msg, 16, bytes, 0, i, 0);
    },
    open: () => {
      msg.set(sealed); // opening decrypts in place, so each round starts from the sealed copy
      if (!ours.open(msg, 16, bytes, 0, 0, 0)) throw new Error('bench: Trellis AEAD failed to open its own message');
    },
  };
  packet.copy(sealed, 16);
  ours.seal(sealed, 16, bytes, 0, 0, 0);

  const c = createCipheriv('chacha20-poly1305', key, nonce, opts);
  const osslBody = c.update(packet);
  c.final();
  const osslTag = c.getAuthTag();
  const openssl = {
    seal: (i: number) => {
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

  const nobleSealed = chacha20poly1305(key, nonce).encrypt(packet);
  const noble = {
    seal: () => chacha20poly1305(key, nonce).encrypt(packet),
    open: () => chacha20poly1305(key, nonce).decrypt(nobleSealed),
  };

  const impls = { trellis, openssl, noble };
  const out: AeadCost[] = [];
  for (const [impl, f] of Object.entries(impls) as [AeadCost['impl'], typeof trellis][]) {
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
