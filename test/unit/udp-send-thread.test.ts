// The native UdpBatchSocket's send thread, on loopback for real: sendMany copies its datagrams into the thread's
// queue and returns (the caller reuses its buffers at once), the thread sends them in order as GSO runs, the
// socket closes cleanly with a queue in flight, and a flood beyond the queue returns instead of hanging.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type NativeUdpBatchSocket, UDP_SLOT_BYTES, UdpBatchSocket } from '../../main/engine/tun/native.ts';
import { waitFor } from './wait-for.ts';

const skip = process.platform === 'linux' ? false : 'recvmmsg/sendmmsg and the send thread are Linux-only';

const LOOP4 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);

function open(t: TestContext): NativeUdpBatchSocket {
  const s = new UdpBatchSocket(4, '127.0.0.1', 0);
  t.after(() => s.close());
  return s;
}

/** Every datagram's bytes, in arrival order. */
function collect(sock: NativeUdpBatchSocket): Buffer[] {
  const got: Buffer[] = [];
  sock.start((buf, lengths, _addrs, _ports, count) => {
    for (let i = 0; i < count; i++)
      got.push(Buffer.from(buf.subarray(i * UDP_SLOT_BYTES, i * UDP_SLOT_BYTES + lengths[i])));
  });
  return got;
}

/** A datagram whose bytes say which one it is. */
function datagram(size: number, id: number): Buffer {
  const d = Buffer.alloc(size);
  d.writeUInt32BE(id, 0);
  for (let j = 4; j < size; j++) d[j] = (id * 31 + j * 7) & 0xff;
  return d;
}

test('send thread: batches arrive whole and in order although the caller overwrites its buffers at once', {
  skip,
}, async (t) => {
  const a = open(t);
  const b = open(t);
  const c = open(t);
  const toB = collect(b);
  const toC = collect(c);
  a.setSendThread(true);
  // One set of buffers reused for every call, as the engine's send ring reuses its message slots.
  const slots = Array.from({ length: 100 }, () => Buffer.alloc(1400));
  const expectB: Buffer[] = [];
  const expectC: Buffer[] = [];
  let id = 0;
  for (let call = 0; call < 60; call++) {
    // Runs of equal sizes with a shorter tail (GSO runs), then single odd sizes.
    const sizes = call % 3 === 2 ? [100, 900, 37] : [...Array(30 + (call % 7)).fill(1312), 600];
    const bufs = sizes.map((n, i) => {
      const d = datagram(n, id++);
      d.copy(slots[i]);
      return slots[i].subarray(0, n);
    });
    const toPeer = call % 2 === 0 ? b : c;
    (call % 2 === 0 ? expectB : expectC).push(...bufs.map((x) => Buffer.from(x)));
    assert.equal(a.sendMany(bufs, bufs.length, LOOP4, toPeer.port), bufs.length, 'the queue took the call');
    for (const s of slots) s.fill(0xee); // reused before the thread has sent them
  }
  await waitFor('every datagram', () => toB.length === expectB.length && toC.length === expectC.length);
  assert.deepEqual(toB, expectB);
  assert.deepEqual(toC, expectC);
  assert.equal(a.sendDropped, 0);
});

test('send thread: off again, sendMany sends in the caller; close with a queue in flight neither hangs nor crashes', {
  skip,
}, async (t) => {
  const a = new UdpBatchSocket(4, '127.0.0.1', 0);
  const b = open(t);
  const got = collect(b);
  a.setSendThread(true);
  a.setSendThread(false);
  assert.equal(a.sendMany([datagram(64, 1)], 1, LOOP4, b.port), 1);
  await waitFor('the datagram sent without the thread', () => got.length === 1);
  a.setSendThread(true);
  const many = Array.from({ length: 200 }, (_, i) => datagram(1312, i));
  for (let i = 0; i < 20; i++) a.sendMany(many, many.length, LOOP4, b.port);
  a.close(); // joins the thread; whatever it had not sent is dropped
  assert.equal(a.closed, true);
  assert.throws(() => a.sendMany(many, 1, LOOP4, b.port), /EBADF|closed/i);
  assert.throws(() => a.setSendThread(true), /EBADF|closed/i);
});

test('send thread: a flood far beyond its queue to a peer that never reads returns, counting what it dropped', {
  skip,
}, async (t) => {
  const a = open(t);
  const sink = open(t); // bound, never started: its receive buffer fills and the kernel drops the rest
  a.setSendThread(true);
  const many = Array.from({ length: 256 }, (_, i) => datagram(1312, i));
  let took = 0;
  const asked = 256 * 80; // ~27 MB, 25 times the queue
  for (let i = 0; i < 80; i++) took += a.sendMany(many, many.length, LOOP4, sink.port);
  assert.ok(took <= asked);
  // Whatever the queue did not take was dropped and counted there; the kernel drops the rest silently on loopback.
  await waitFor('the thread to settle', () => a.sendDropped >= asked - took, 5000);
  // The socket still works: a fresh peer gets a fresh datagram.
  const b = open(t);
  const got = collect(b);
  assert.equal(a.sendMany([datagram(80, 7)], 1, LOOP4, b.port), 1);
  await waitFor('a datagram after the flood', () => got.length === 1);
  assert.deepEqual(got[0], datagram(80, 7));
});
