// The send buffer: its default size bounds what a connection keeps in flight (under load the round trip through the
// tunnel grows to several ms, and 1 MiB a round trip held an upload through the proxy below the path's speed), and
// what it copies into segments is the right bytes wherever the copy starts (it resumes from the last copy's chunk).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTcp, seqAdd, seqDiff, TCP_FLAGS } from '../../main/engine/netstack/segment.ts';
import { SendBuffer } from '../../main/engine/netstack/send-buffer.ts';
import { DEFAULT_TCP_CONFIG } from '../../main/engine/netstack/tcp-types.ts';
import { handshake, seg, setup } from './netstack-raw.ts';

const { ACK } = TCP_FLAGS;
const MiB = 1024 * 1024;

test('with the default send buffer, more than 3 MiB go out unacknowledged when the peer and the window allow', async () => {
  const env = setup({ sndBuf: 'default', maxBuffered: 64 * MiB });
  const { peerSeq, mySeq, sock } = handshake(env, { mss: 1200, wscale: 7 });
  const total = 6 * MiB;
  sock.write(new Uint8Array(total).fill(7));
  let acked = mySeq;
  let sentEnd = mySeq;
  let maxInFlight = 0;
  // A peer that acknowledges the oldest segment only, one at a time: slow start opens the window one segment per
  // ACK, so what is in flight grows until the send buffer (or the data) ends it.
  for (let step = 0; step < 20_000; step++) {
    for (const p of env.out.splice(0)) {
      const s = parseTcp(p.subarray(20), p.subarray(12, 16), p.subarray(16, 20));
      assert.ok(typeof s !== 'string', 'a valid segment');
      const end = seqAdd(s.seq, s.payload.length);
      if (seqDiff(end, sentEnd) > 0) sentEnd = end;
    }
    maxInFlight = Math.max(maxInFlight, seqDiff(sentEnd, acked));
    if (seqDiff(sentEnd, acked) <= 0) break;
    acked = seqAdd(acked, Math.min(1200, seqDiff(sentEnd, acked)));
    env.stack.deliver(seg(ACK, peerSeq, acked, { window: 0xffff }));
    await null; // the socket's stream hands the app's next bytes over between turns
  }
  assert.ok(DEFAULT_TCP_CONFIG.sndBuf >= 4 * MiB, `default send buffer ${DEFAULT_TCP_CONFIG.sndBuf}`);
  assert.ok(maxInFlight > 3 * MiB, `at most ${maxInFlight} bytes were in flight`);
});

test('segments copied out of the send buffer hold the bytes at their offsets, in order, after ACKs and on retransmission', () => {
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const buf = new SendBuffer();
  let model: number[] = []; // the bytes held, from SND.UNA
  let next = 0;
  let sent = 0; // offset of the next in-order segment
  for (let step = 0; step < 3000; step++) {
    const op = rand(10);
    if (op < 3) {
      const chunk = new Uint8Array(1 + rand(5000)).map(() => next++ & 0xff);
      buf.append(chunk);
      model = model.concat([...chunk]);
    } else if (op < 5) {
      const n = rand(Math.min(model.length, sent) + 1);
      buf.consume(n);
      model = model.slice(n);
      sent -= n;
    } else {
      // mostly the next segment in order; now and then one from further back (a retransmission)
      const offset = op === 9 ? rand(model.length + 1) : Math.min(sent, model.length);
      const len = 1 + rand(1500);
      const out = new Uint8Array(len + 8).fill(0xee);
      buf.copyTo(out, 8, offset, len);
      const want = model.slice(offset, offset + len);
      assert.deepEqual([...out.subarray(8, 8 + want.length)], want, `step ${step}: bytes at offset ${offset}`);
      assert.ok(
        out.subarray(8 + want.length).every((b) => b === 0xee),
        `step ${step}: nothing past the held bytes`,
      );
      if (op !== 9) sent = Math.min(model.length, offset + len);
    }
    assert.equal(buf.length, model.length);
  }
});
