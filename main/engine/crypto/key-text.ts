// Tailscale's key text forms ("mkey:<hex>", "nodekey:<hex>", "discokey:<hex>", ...), as control, DERP and the
// netmap write them. Pure: no I/O.
import { publicKeyOf } from '../wg/crypto.ts';

export type KeyPrefix = 'mkey' | 'nodekey' | 'discokey' | 'privkey' | 'chalpub';

export class KeyTextError extends Error {
  override readonly name = 'KeyTextError';
}

export function keyToText(prefix: KeyPrefix, key: Uint8Array): string {
  return `${prefix}:${Buffer.from(key).toString('hex')}`;
}

export function keyFromText(prefix: KeyPrefix, text: unknown): Uint8Array {
  if (typeof text !== 'string' || !text.startsWith(`${prefix}:`)) {
    throw new KeyTextError(`expected a ${prefix}: key, got ${JSON.stringify(text)?.slice(0, 80)}`);
  }
  const hex = text.slice(prefix.length + 1);
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new KeyTextError(`${prefix}: key must be 64 hex digits`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function publicText(prefix: 'mkey' | 'nodekey' | 'discokey', privateKey: Uint8Array): string {
  return keyToText(prefix, publicKeyOf(privateKey));
}
