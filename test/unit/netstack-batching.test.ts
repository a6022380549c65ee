// How the userspace stack batches within one turn of the event loop: in-order data handed over in several batches
// (each a separate call from the data path) is acknowledged once at the turn's end, and the short last segment of
// an app write waits for the turn's end, so writes made in one turn go out as full segments.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTcp, seqAdd, TCP_FLAGS } from '../../main/engine/netstack/segment.ts';
import { handshake, seg, setup } from './netstack-raw.ts';

const { ACK, PSH } = TCP_FLAGS;
const MSS = 1200;

/** The end of this turn of the event loop (and the one after: the stack's own end-of-turn work may queue more). */
const turn = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)));

function tcpOf(p: Uint8Array) {
  const s = parseTcp(p.subarray(20), p.subarray(12, 16), p.subarray(16, 20));
  assert.ok(typeof s !== 'string', 'the stack sent a valid segment');
  return s;
}

test('data handed over in three batches in one turn is acknowledged once, at the turn end, up to its last byte', async () => {
  const env = setup({ rcvBuf: 512 * 1024 });
  const { peerSeq, mySeq, sock } = handshake(env, { mss: MSS, wscale: 7 });
  let received = 0;
  sock.on('data', (b: Buffer) => {
    received += b.length;
  });
  env.out.length = 0;
  let seq = peerSeq;
  for (let batch = 0; batch < 3; batch++) {
    for (let i = 0; i < 15; i++) {
      env.stack.deliver(seg(ACK, seq, mySeq, { payload: new Uint8Array(MSS).fill(i) }));
      seq = seqAdd(seq, MSS);
    }
    await null; // the data path's next call: microtasks run between batches
    // (45 segments stay within the 65535 bytes the SYN-ACK could offer: a sender never goes past the window.)
  }
  assert.equal(env.out.length, 0, 'no ACK before the turn ends');
  await turn();
  const acks = env.out.map(tcpOf).filter((s) => s.payload.length === 0);
  assert.equal(acks.length, 1, `one ACK for 45 segments (got ${acks.length})`);
  assert.equal(acks[0].ack, seq, 'it acknowledges every byte');
  assert.equal(received, 45 * MSS);
});

test('writes made in one turn go out as full segments; the short last one follows at the turn end', async () => {
  const env = setup();
  const { peerSeq, mySeq, sock } = handshake(env, { mss: MSS, wscale: 7 });
  env.out.length = 0;
  for (let i = 0; i < 3; i++) sock.write(new Uint8Array(2100).fill(i));
  await null;
  const now = env.out.map(tcpOf);
  assert.deepEqual(
    now.map((s) => s.payload.length),
    [MSS, MSS, MSS, MSS, MSS],
    'within the turn: full segments only (1200 + 900 for each write would be six)',
  );
  await turn();
  const all = env.out.map(tcpOf);
  assert.deepEqual(
    all.map((s) => s.payload.length),
    [MSS, MSS, MSS, MSS, MSS, 6300 - 5 * MSS],
  );
  assert.ok(all[5].flags & PSH, 'the last segment pushes');
  assert.equal(all[5].seq, seqAdd(mySeq, 5 * MSS));
  // Bytes in order across the writes.
  const bytes = Buffer.concat(all.map((s) => s.payload));
  for (let i = 0; i < 3; i++) assert.ok(bytes.subarray(i * 2100, (i + 1) * 2100).every((x) => x === i));
  // A write with nothing in flight is not held: the peer acknowledges all, the next small write goes at once.
  env.stack.deliver(seg(ACK, peerSeq, seqAdd(mySeq, 6300)));
  env.out.length = 0;
  sock.write(new Uint8Array(100));
  await null;
  assert.deepEqual(
    env.out.map(tcpOf).map((s) => s.payload.length),
    [100],
  );
});
