// A segment built into a reused, dirty output buffer (PacketScratch) is byte for byte the one built into fresh
// zeroed bytes: every header byte is written, for IPv4 and IPv6, with and without options and payload.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildTcpPacket,
  PacketScratch,
  parseTcp,
  type SegmentOut,
  TCP_FLAGS,
  writeIpHeader,
} from '../../main/engine/netstack/segment.ts';
import { fold, sum16 } from '../../main/engine/packet/checksum.ts';
import { parseAddress } from '../../main/engine/packet/ip.ts';

const { ACK, PSH, SYN } = TCP_FLAGS;

function segments(src: string, dst: string): SegmentOut[] {
  const a = parseAddress(src);
  const b = parseAddress(dst);
  const base = { src: a, dst: b, srcPort: 40_000, dstPort: 443, seq: 0xfffffff0, ack: 12_345, window: 5000 };
  return [
    { ...base, flags: SYN, options: { mss: 1240, wscale: 7, sackOk: true } },
    { ...base, flags: ACK | PSH, payload: new Uint8Array(1200).fill(0x5a) },
    { ...base, flags: ACK, options: { sack: [[100, 200]] } },
    { ...base, flags: ACK, payload: new Uint8Array(7).fill(1), ttl: 3 },
  ];
}

test('segments built into a dirty reused buffer equal those built into fresh bytes', () => {
  const scratch = new PacketScratch(1500);
  scratch.bytes(1500).fill(0xff); // what earlier packets left behind
  for (const [src, dst] of [
    ['100.64.0.1', '100.64.0.2'],
    ['fd7a:115c:a1e0::1', 'fd7a:115c:a1e0::2'],
  ]) {
    for (const s of segments(src, dst)) {
      const fresh = buildTcpPacket(s);
      const reused = buildTcpPacket(s, scratch.bytes);
      assert.deepEqual(Buffer.from(reused), Buffer.from(fresh), `${src} flags ${s.flags}`);
      scratch.bytes(1500).fill(0xff);
      const h = src.includes(':') ? 40 : 20;
      const parsed = parseTcp(fresh.subarray(h), s.src, s.dst);
      assert.ok(typeof parsed !== 'string', `parses: ${String(parsed)}`);
    }
  }
  // One buffer: the next packet overwrites the last (the output must copy what it keeps).
  const [x, y] = [scratch.bytes(60), scratch.bytes(80)];
  assert.equal(x.buffer, y.buffer);
  assert.equal(scratch.bytes(60), x, 'a view per length, made once');
  assert.notEqual(scratch.bytes(2000).buffer, x.buffer, 'larger than the scratch: bytes of their own');
});

test('an IPv4 header checksum (summed from the fields) verifies for any addresses, length, TTL and protocol', () => {
  let seed = 7;
  const byte = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 24;
  };
  const out = new Uint8Array(20);
  for (let i = 0; i < 2000; i++) {
    const src = Uint8Array.from([byte(), byte(), byte(), byte()]);
    const dst = i % 7 ? Uint8Array.from([byte(), byte(), byte(), byte()]) : Uint8Array.from([255, 255, 255, 255]);
    const len = (byte() << 8) | byte();
    const payload = Math.min(len, 65_515);
    out.fill(0xff);
    assert.equal(writeIpHeader(out, src, dst, byte(), payload, byte()), 20);
    assert.equal(fold(sum16(out, 0, 20)), 0xffff, `header ${Buffer.from(out).toString('hex')} verifies`);
    assert.deepEqual([...out.subarray(12, 16)], [...src]);
    assert.deepEqual([...out.subarray(16, 20)], [...dst]);
    assert.equal((out[2] << 8) | out[3], 20 + payload);
  }
});
