// The default send buffer bounds what a connection keeps in flight: under load the round trip through the tunnel
// grows to several ms, and 1 MiB a round trip held an upload through the proxy below the path's speed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTcp, seqAdd, seqDiff, TCP_FLAGS } from '../../main/engine/netstack/segment.ts';
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
