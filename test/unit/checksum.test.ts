// The Internet checksum's word sum: the fast path (32-bit words at even addresses) agrees with a byte-pair
// reference at every alignment, length, range and starting sum, including all-ones and all-zero data; the native
// addon's sum (used for long runs) equals the JavaScript one exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fold, internetChecksum, sum16, sum16Portable } from '../../main/engine/packet/checksum.ts';
import { loadNativeAddon } from '../../main/engine/tun/native.ts';
import { prng } from './netstack-link.ts';

function reference(b: Uint8Array, from: number, to: number, acc: number): number {
  let s = acc;
  for (let i = from; i < to; i += 2) s += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  return s;
}

test('sum16 (native and portable) matches the byte-pair reference at every alignment and length', () => {
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
    assert.equal(fold(sum16Portable(v, from, to, acc)), fold(reference(v, from, to, acc)), `portable, off ${off}`);
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

test('the native sum equals the portable one at every offset and length, odd ones included', () => {
  const native = (loadNativeAddon() as unknown as { sum16: (b: Uint8Array, from: number, to: number) => number }).sum16;
  const rand = prng(7);
  const buf = new Uint8Array(4200);
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
  for (let off = 0; off < 9; off++) {
    const v = buf.subarray(off);
    for (let from = 0; from < 9; from++) {
      for (let len = 0; len <= 1100; len += len < 80 ? 1 : 37) {
        const to = from + len;
        assert.equal(native(v, from, to), fold(sum16Portable(v, from, to)), `off ${off} from ${from} len ${len}`);
      }
    }
  }
  for (const fill of [0, 0xff]) {
    const z = new Uint8Array(1501).fill(fill);
    for (const len of [256, 1000, 1499, 1500, 1501]) {
      assert.equal(native(z, 0, len), fold(sum16Portable(z, 0, len)), `fill ${fill} len ${len}`);
      assert.equal(native(z, 1, len), fold(sum16Portable(z, 1, len)), `fill ${fill} from 1 len ${len}`);
    }
  }
  // Big runs (a 64 KiB TSO packet) and the dispatching sum16 with a starting sum.
  const big = new Uint8Array(70_001);
  for (let i = 0; i < big.length; i++) big[i] = Math.floor(rand() * 256);
  for (const [from, to] of [
    [0, 70_001],
    [3, 65_538],
    [1, 257],
  ] as const) {
    assert.equal(native(big, from, to), fold(sum16Portable(big, from, to)));
    assert.equal(fold(sum16(big, from, to, 12_345)), fold(sum16Portable(big, from, to, 12_345)));
  }
  assert.throws(() => native(big, 10, 5), TypeError);
  assert.throws(() => native(big, 0, 70_002), TypeError);
});
