// The Internet checksum's word sum: the fast path (32-bit words at even addresses) agrees with a byte-pair
// reference at every alignment, length, range and starting sum, including all-ones and all-zero data.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fold, internetChecksum, sum16 } from '../../main/engine/packet/checksum.ts';
import { prng } from './netstack-link.ts';

function reference(b: Uint8Array, from: number, to: number, acc: number): number {
  let s = acc;
  for (let i = from; i < to; i += 2) s += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  return s;
}

test('sum16 matches the byte-pair reference at every alignment and length', () => {
  const rand = prng(42);
  const buf = new Uint8Array(70_000);
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
  for (let t = 0; t < 5000; t++) {
    const off = Math.floor(rand() * 16);
    const len = Math.floor(rand() * (t % 50 === 0 ? 65_600 : 1600));
    const v = buf.subarray(off, off + len);
    const from = Math.min(len, Math.floor(rand() * 9));
    const to = Math.max(from, len - Math.floor(rand() * 9));
    const acc = t % 3 === 0 ? 0 : Math.floor(rand() * 1e6);
    const fill = t % 11 === 0 ? 0xff : t % 13 === 0 ? 0 : -1;
    const saved = fill >= 0 ? v.slice(from, to) : undefined;
    if (fill >= 0) v.fill(fill, from, to);
    assert.equal(
      fold(sum16(v, from, to, acc)),
      fold(reference(v, from, to, acc)),
      `off ${off} len ${len} ${from}-${to}`,
    );
    if (saved) v.set(saved, from);
  }
});

test('an IPv4 header with its checksum filled in verifies to zero', () => {
  const h = Uint8Array.from([0x45, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
  const c = internetChecksum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  assert.equal(internetChecksum(h), 0);
});
