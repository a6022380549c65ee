// Splitting the kernel's TCP super-packets (TSO frames read from a TUN with a virtio_net_hdr) and finishing partial
// checksums, in the addon's read loop (native/src/tun_offload.cc), reached through its test entry splitForTest.
// Checked against a byte-by-byte RFC 1071 checksum written independently here. Needs the addon built.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { loadNativeAddon, type OffloadStats } from '../../main/engine/tun/native.ts';

/** One frame through a fresh native splitter: the packets it gave (copies) and its counters. */
function split(frame: Uint8Array): OffloadStats & { packets: Buffer[] } {
  return loadNativeAddon().splitForTest(frame);
}

/** RFC 1071 over bytes, one 16-bit big-endian word at a time. */
function sum16(bytes: Uint8Array, start = 0): number {
  let s = start;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** True when the packet's IPv4 header (if any) and its TCP/UDP checksum verify. */
function checksumsValid(pkt: Uint8Array): boolean {
  const v6 = pkt[0] >> 4 === 6;
  const l4 = v6 ? 40 : (pkt[0] & 15) * 4;
  if (!v6 && sum16(pkt.subarray(0, l4)) !== 0xffff) return false;
  const proto = v6 ? pkt[6] : pkt[9];
  const len = pkt.length - l4;
  const addrs = v6 ? pkt.subarray(8, 40) : pkt.subarray(12, 20);
  const pseudo = sum16(addrs) + proto + len;
  return sum16(pkt.subarray(l4), pseudo) === 0xffff;
}

function vnet(flags: number, gso: number, hdrLen: number, gsoSize: number, csumStart: number, csumOff: number) {
  const h = Buffer.alloc(10);
  h[0] = flags;
  h[1] = gso;
  h.writeUInt16LE(hdrLen, 2);
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(csumStart, 6);
  h.writeUInt16LE(csumOff, 8);
  return h;
}

function tcpHeader(seq: number, flags: number): Buffer {
  const t = Buffer.alloc(32); // 20 + a 12-byte timestamp option block, as Linux sends
  t.writeUInt16BE(40000, 0);
  t.writeUInt16BE(5201, 2);
  t.writeUInt32BE(seq, 4);
  t.writeUInt32BE(777, 8);
  t[12] = 8 << 4;
  t[13] = flags;
  t.writeUInt16BE(500, 14);
  t.writeUInt16BE(0xbeef, 16); // whatever partial sum the kernel left: it must be replaced
  Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]).copy(t, 20);
  return t;
}

function ipv4(payloadLen: number, proto: number, id: number): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payloadLen, 2);
  h.writeUInt16BE(id, 4);
  h[6] = 0x40; // DF
  h[8] = 64;
  h[9] = proto;
  Buffer.from([100, 64, 0, 1, 100, 64, 0, 2]).copy(h, 12);
  h.writeUInt16BE(~sum16(h) & 0xffff, 10); // the kernel fills it in; only the L4 checksum is left partial
  return h;
}

function ipv6(payloadLen: number, proto: number): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payloadLen, 4);
  h[6] = proto;
  h[7] = 64;
  Buffer.from('fd7a115ca1e0000000000000000000010000000000000000fd7a115ca1e00000', 'hex').copy(h, 8);
  h[39] = 2;
  return h;
}

function collect(frame: Uint8Array): Buffer[] {
  return split(frame).packets;
}

const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const CWR = 0x80;

test('an IPv4 TCP super-packet becomes MSS-sized segments with their own lengths, IDs, sequence numbers, checksums', () => {
  const payload = randomBytes(4999); // odd: the last segment has an odd length
  const mss = 1228;
  const tcp = tcpHeader(0xfffff000, ACK | PSH | FIN | CWR); // the sequence number wraps within the burst
  const frame = Buffer.concat([vnet(1, 1, 52, mss, 20, 16), ipv4(32 + payload.length, 6, 0xfffe), tcp, payload]);
  const s = split(frame);
  const segs = s.packets;
  assert.equal(segs.length, Math.ceil(payload.length / mss));
  assert.deepEqual(
    { superPackets: s.superPackets, segments: s.segments, dropped: s.dropped },
    {
      superPackets: 1,
      segments: segs.length,
      dropped: 0,
    },
  );
  segs.forEach((seg, i) => {
    const chunk = Math.min(mss, payload.length - i * mss);
    assert.equal(seg.length, 52 + chunk);
    assert.equal(seg.readUInt16BE(2), seg.length, 'IPv4 total length');
    assert.equal(seg.readUInt16BE(4), (0xfffe + i) & 0xffff, 'IPv4 ID counts up');
    assert.equal(seg.readUInt32BE(24), (0xfffff000 + i * mss) >>> 0, 'sequence number');
    const last = i === segs.length - 1;
    assert.equal(seg[33], ACK | (last ? PSH | FIN : 0) | (i === 0 ? CWR : 0), `flags of segment ${i}`);
    assert.ok(seg.subarray(40, 52).equals(tcp.subarray(20)), 'options kept');
    assert.ok(checksumsValid(seg), `checksums of segment ${i}`);
  });
  assert.ok(Buffer.concat(segs.map((x) => x.subarray(52))).equals(payload), 'payload in order, nothing lost');
});

test('an IPv6 TCP super-packet splits with payload lengths and valid checksums', () => {
  const payload = randomBytes(3 * 1208);
  const frame = Buffer.concat([vnet(1, 4, 72, 1208, 40, 16), ipv6(32 + payload.length, 6), tcpHeader(1, ACK), payload]);
  const segs = collect(frame);
  assert.equal(segs.length, 3);
  for (const seg of segs) {
    assert.equal(seg.readUInt16BE(4), seg.length - 40, 'IPv6 payload length');
    assert.ok(checksumsValid(seg));
  }
  assert.ok(Buffer.concat(segs.map((x) => x.subarray(72))).equals(payload));
});

test('a super-packet no larger than one MSS, or with no payload, is one valid packet', () => {
  for (const n of [0, 1, 1228]) {
    const frame = Buffer.concat([vnet(1, 1, 52, 1228, 20, 16), ipv4(32 + n, 6, 9), tcpHeader(5, ACK), randomBytes(n)]);
    const segs = collect(frame);
    assert.equal(segs.length, 1, `payload ${n}`);
    assert.equal(segs[0]?.length, 52 + n);
    assert.ok(segs[0] && checksumsValid(segs[0]));
  }
});

test('a packet with a partial checksum (no GSO) gets its TCP or UDP checksum finished', () => {
  const udpBody = randomBytes(333);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(5353, 0);
  udp.writeUInt16BE(53, 2);
  udp.writeUInt16BE(8 + udpBody.length, 4);
  udp.writeUInt16BE(0x1234, 6);
  for (const [ip, l4] of [
    [ipv4(8 + udpBody.length, 17, 1), 20],
    [ipv6(8 + udpBody.length, 17), 40],
  ] as const) {
    const segs = collect(Buffer.concat([vnet(1, 0, 0, 0, l4, 6), ip, udp, udpBody]));
    assert.equal(segs.length, 1);
    assert.ok(segs[0] && checksumsValid(segs[0]), `UDP over IPv${l4 === 20 ? 4 : 6}`);
    assert.ok(segs[0]?.subarray(l4 + 8).equals(udpBody));
  }
  const tcp = Buffer.concat([ipv4(32 + 100, 6, 1), tcpHeader(9, ACK | PSH), randomBytes(100)]);
  const segs = collect(Buffer.concat([vnet(1, 0, 0, 0, 20, 16), tcp]));
  assert.ok(segs[0] && checksumsValid(segs[0]));
});

test('a plain frame passes through untouched', () => {
  const pkt = Buffer.concat([ipv4(32 + 10, 6, 1), tcpHeader(1, ACK), randomBytes(10)]);
  const segs = collect(Buffer.concat([Buffer.alloc(10), pkt]));
  assert.equal(segs.length, 1);
  assert.ok(segs[0]?.equals(pkt));
});

test('offload headers that do not match the packet are dropped and counted, never thrown', () => {
  const body = Buffer.concat([ipv4(32 + 3000, 6, 1), tcpHeader(1, ACK), randomBytes(3000)]);
  const v6body = Buffer.concat([ipv6(32 + 100, 6), tcpHeader(1, ACK), randomBytes(100)]);
  const bad = [
    Buffer.concat([vnet(1, 1, 52, 0, 20, 16), body]), // MSS 0
    Buffer.concat([vnet(1, 1, 52, 1228, 24, 16), body]), // L4 start is not the IPv4 header's end
    Buffer.concat([vnet(1, 1, 52, 1228, 20, 6), body]), // TCP GSO with UDP's checksum offset
    Buffer.concat([vnet(1, 0x81, 52, 1228, 20, 16), body]), // ECN: not asked for
    Buffer.concat([vnet(1, 5, 28, 1200, 20, 6), body]), // UDP GSO: not asked for
    Buffer.concat([vnet(1, 4, 72, 1208, 40, 16), body]), // says IPv6, holds IPv4
    Buffer.concat([vnet(1, 1, 52, 1208, 40, 16), v6body]), // says IPv4, holds IPv6
    Buffer.concat([vnet(1, 1, 52, 1228, 20, 16), body.subarray(0, 30)]), // TCP header cut short
    Buffer.concat([vnet(1, 0, 0, 0, 20, 16), body.subarray(0, 30)]), // checksum field past the end
    Buffer.alloc(10), // a header and nothing else
  ];
  for (const [i, frame] of bad.entries()) {
    assert.deepEqual(split(frame), { packets: [], superPackets: 0, segments: 0, dropped: 1 }, `frame ${i}`);
  }
});

test('hostile offload headers: beyond the frame, too many segments, cut-short headers; all dropped and counted', () => {
  const body = Buffer.concat([ipv4(32 + 5000, 6, 1), tcpHeader(1, ACK), randomBytes(5000)]);
  const v6body = Buffer.concat([ipv6(32 + 5000, 6), tcpHeader(1, ACK), randomBytes(5000)]);
  const noOptions = Buffer.from(body);
  noOptions[32] = 4 << 4; // TCP data offset 16 bytes: shorter than a TCP header
  const shortIhl = Buffer.from(body);
  shortIhl[0] = 0x44; // IHL 16 bytes
  const huge = Buffer.concat([ipv4(0, 6, 1), tcpHeader(1, ACK), Buffer.alloc(65490)]); // 65542 bytes: a full read
  const extHeaders = Buffer.concat([ipv6(5000, 0), randomBytes(5000)]);
  extHeaders[500 + 12] = 5 << 4; // a TCP header at 500, behind 460 bytes of (would-be) extension headers
  const bad = [
    Buffer.concat([vnet(1, 1, body.length + 1, 1228, 20, 16), body]), // hdr_len beyond the frame
    Buffer.concat([vnet(1, 1, 52, 1, 20, 16), body]), // gso_size 1: 5000 segments, more than the 4096 allowed
    Buffer.concat([vnet(1, 4, 72, 1, 40, 16), v6body]),
    Buffer.concat([vnet(1, 1, 52, 1228, 20, 16), noOptions]),
    Buffer.concat([vnet(1, 1, 52, 1228, 16, 16), shortIhl]),
    Buffer.concat([vnet(1, 0, 0, 0, 16, 6), shortIhl]),
    Buffer.concat([vnet(1, 1, 52, 65535, 20, 16), huge]), // one segment longer than an IPv4 packet can be
    Buffer.concat([vnet(1, 4, 72, 1208, 0xffff, 16), v6body]), // L4 start far past the end
    Buffer.concat([vnet(1, 0, 0, 0, 0xfff0, 16), v6body]),
    Buffer.from([1, 1, 0, 0, 0, 5]), // shorter than the header
    Buffer.alloc(0),
    Buffer.concat([vnet(1, 1, 52, 1228, 20, 16), ipv4(32 + 100, 17, 1), tcpHeader(1, ACK), randomBytes(100)]), // UDP
    Buffer.concat([vnet(1, 4, 72, 1208, 40, 16), ipv6(32 + 100, 17), tcpHeader(1, ACK), randomBytes(100)]),
    Buffer.concat([vnet(1, 0, 0, 0, 20, 16), ipv4(32 + 100, 17, 1), tcpHeader(1, ACK), randomBytes(100)]), // sum
    Buffer.concat([vnet(1, 4, 0, 100, 500, 16), extHeaders]), // 520 bytes of headers in front of every segment
  ];
  for (const [i, frame] of bad.entries()) {
    assert.deepEqual(split(frame), { packets: [], superPackets: 0, segments: 0, dropped: 1 }, `frame ${i}`);
  }
  // The most segments allowed still split: 4096 of one byte each.
  const most = Buffer.concat([ipv4(32 + 4096, 6, 1), tcpHeader(1, ACK | PSH), randomBytes(4096)]);
  const s = split(Buffer.concat([vnet(1, 1, 52, 1, 20, 16), most]));
  assert.equal(s.segments, 4096);
  assert.ok(s.packets.every(checksumsValid));
});

test('random super-packets: every segment valid, the payload conserved, whatever the MSS and the family', () => {
  for (let round = 0; round < 200; round++) {
    const v6 = round % 2 === 1;
    const n = Math.floor(Math.random() * 20000);
    const mss = 1 + Math.floor(Math.random() * (round % 5 === 0 ? 60 : 3000));
    const payload = randomBytes(n);
    const ip = v6 ? ipv6(32 + n, 6) : ipv4(32 + n, 6, round);
    const frame = Buffer.concat([vnet(1, v6 ? 4 : 1, 0, mss, v6 ? 40 : 20, 16), ip, tcpHeader(round, ACK), payload]);
    const s = split(frame);
    const want = Math.max(1, Math.ceil(n / mss));
    if (want > 4096) {
      assert.equal(s.dropped, 1);
      continue;
    }
    assert.equal(s.packets.length, want);
    const hdr = v6 ? 72 : 52;
    assert.ok(s.packets.every(checksumsValid), `round ${round}: checksums`);
    assert.ok(Buffer.concat(s.packets.map((p) => p.subarray(hdr))).equals(payload), `round ${round}: payload`);
  }
});

test('the read loop: super-packets fill batches of plain packets and continue into the next, nothing lost', () => {
  const { batchesForTest } = loadNativeAddon();
  const frames: Buffer[] = [];
  const expected: Buffer[] = [];
  for (let i = 0; i < 12; i++) {
    // Mostly cut where they were read; a small MSS (more segments than a batch has slots) or a full batch's last
    // bytes send one to the copy that continues into the next batch.
    const n = 60000 + i * 450;
    const mss = i % 4 === 3 ? 200 : 1228;
    const frame = Buffer.concat([vnet(1, 1, 52, mss, 20, 16), ipv4(32 + n, 6, i), tcpHeader(i, ACK), randomBytes(n)]);
    frames.push(frame);
    expected.push(...split(frame).packets);
    const plain = Buffer.concat([ipv4(32 + 10, 6, i), tcpHeader(i, ACK), randomBytes(10)]);
    frames.push(Buffer.concat([Buffer.alloc(10), plain]), Buffer.concat([vnet(1, 1, 52, 0, 20, 16), plain]));
    expected.push(plain); // the second, with gso_size 0, is dropped
  }
  const acks = Array.from({ length: 300 }, (_, i) => Buffer.concat([ipv6(32, 6), tcpHeader(i, ACK)]));
  for (const a of acks) frames.push(Buffer.concat([Buffer.alloc(10), a]));
  expected.push(...acks);
  const batches = batchesForTest(frames);
  for (const b of batches) {
    assert.ok(b.length <= 256, 'at most TUN_MAX_BATCH packets');
    assert.ok(b.reduce((x, p) => x + p.length, 0) <= 256 * 1024, 'within TUN_BATCH_BYTES');
  }
  assert.ok(batches.length > 3, 'the super-packets took several batches');
  const got = batches.flat();
  assert.equal(got.length, expected.length);
  for (const [i, p] of got.entries()) assert.ok(p.equals(expected[i] as Buffer), `packet ${i}`);
});
