// The stack-wide memory cap: send buffers, received data the apps do not read and out-of-order data of all
// connections together stay under maxBufferedBytes whatever raw peers send (many connections that are never read,
// handshakes completed by a flood, huge windows, bogus SACK blocks, every flag combination, bad data offsets).
// Past the cap data is refused and counted, new connections are reset, and room given back reopens windows.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fillTransportChecksum, parseTcp, seqAdd, TCP_FLAGS } from '../../main/engine/netstack/segment.ts';
import type { TcpSocket } from '../../main/engine/netstack/tcp-socket.ts';
import { collect, makePair, prng, runUntil, seededBytes, sha256, V4, V6 } from './netstack-link.ts';
import { handshake, lastTcp, ME, PEER, type RawEnv, seg, setup } from './netstack-raw.ts';

const { SYN, ACK, FIN, RST } = TCP_FLAGS;
const KiB = 1024;
const MiB = 1024 * 1024;
const tick = () => new Promise<void>((r) => setImmediate(r));

/** Segments the stack sent since `from`, parsed. */
function sentSince(env: RawEnv, from: number) {
  return env.out.slice(from).map((p) => {
    const s = parseTcp(p.subarray(20), p.subarray(12, 16), p.subarray(16, 20));
    assert.ok(typeof s !== 'string');
    return s;
  });
}

test('connections whose apps never read: bytes held stay under the stack cap, then SYNs are reset; reading reopens', async () => {
  const cap = 1 * MiB;
  const env = setup({ maxBuffered: cap, rcvBuf: 256 * KiB, maxConnections: 64 });
  const conns = Array.from({ length: 16 }, (_, c) => ({ ...handshake(env, { mss: 1200, wscale: 7 }, 4000 + c) }));
  let peak = 0;
  const payload = new Uint8Array(1200).fill(0x5a);
  for (const [c, conn] of conns.entries()) {
    // Blind blast: far more than any window, in order.
    for (let off = 0; off < 400 * KiB; off += payload.length) {
      env.stack.deliver(seg(ACK, seqAdd(conn.peerSeq, off), conn.mySeq, { payload, sport: 4000 + c }));
      peak = Math.max(peak, env.stack.bufferedBytes);
      if (off % (16 * payload.length) === 0) await tick(); // batches: the stack ACKs (and opens its window) after each
    }
  }
  const unread = env.accepted.reduce((n, s) => n + s.readableLength, 0);
  // Each connection may keep a floor of 4 segments beyond the cap (so full stacks cannot deadlock).
  assert.ok(peak <= cap + 16 * 4 * 1200, `peak ${peak} under the cap ${cap} plus the floors`);
  assert.ok(unread <= peak && unread > cap / 2, `the apps hold ${unread} unread bytes`);
  assert.equal(env.stack.bufferedBytes, unread, 'the stack counts what its sockets hold');
  assert.ok(env.stack.drops['memory-full']! > 0, JSON.stringify(env.stack.drops));
  const last = lastTcp(env.out);
  const shift = conns[0].shift;
  assert.ok(last.window << shift < 64 * KiB, `a full stack advertises a small window (${last.window << shift})`);

  // A new connection is refused plainly.
  env.stack.deliver(seg(SYN, 77, 0, { sport: 9999, options: { mss: 1200 } }));
  const refusal = lastTcp(env.out);
  assert.equal(refusal.flags & RST, RST, 'answered with RST');
  assert.equal(env.stack.drops['memory-full-syn'], 1);

  // One app reads everything: its bytes leave the account and the starved connections hear their windows open.
  const before = env.out.length;
  const reader = env.accepted[0];
  while (reader.read() !== null);
  await tick();
  await tick();
  assert.ok(env.stack.bufferedBytes < unread - 200 * KiB, `after reading: ${env.stack.bufferedBytes}`);
  const updates = sentSince(env, before).filter((s) => s.flags === ACK && s.dstPort !== 4000 && s.window > 0);
  assert.ok(updates.length > 0, 'window updates went to connections that had been refused');
  handshake(env, { mss: 1200 }, 9998);
  env.stack.close();
  assert.equal(env.stack.bufferedBytes, 0, 'closing gives every byte back');
});

test('writers on many connections to peers that never acknowledge: held bytes stay under the cap; acks drain it all', async () => {
  const cap = 1 * MiB;
  const env = setup({ maxBuffered: cap, sndBuf: 256 * KiB, maxConnections: 64 });
  const n = 12;
  const conns = Array.from({ length: n }, (_, c) => handshake(env, { mss: 1200, wscale: 14 }, 5000 + c));
  const finished: boolean[] = [];
  conns.forEach((c, i) => {
    c.sock.on('finish', () => {
      finished[i] = true;
    });
    c.sock.end(new Uint8Array(600 * KiB).fill(i));
  });
  await tick();
  assert.ok(env.stack.bufferedBytes <= cap, `held ${env.stack.bufferedBytes}`);
  assert.ok(env.stack.bufferedBytes > cap / 2, 'the cap, not a smaller bound, held writes back');
  assert.ok(env.stack.memory.waiters > 0, 'writers wait for room');
  // The peers now acknowledge whatever they got, round after round, until every write (and FIN) is done.
  const acked = new Map<number, number>();
  let seen = 0;
  for (let round = 0; round < 5000 && finished.filter(Boolean).length < n; round++) {
    for (const s of sentSince(env, seen)) {
      const end = seqAdd(s.seq, s.payload.length + (s.flags & FIN ? 1 : 0));
      const prev = acked.get(s.dstPort);
      if (prev === undefined || ((end - prev) | 0) > 0) acked.set(s.dstPort, end);
    }
    seen = env.out.length;
    for (const [port, ack] of acked) {
      const i = port - 5000;
      env.stack.deliver(seg(ACK, conns[i].peerSeq, ack, { sport: port, window: 65535 }));
      assert.ok(env.stack.bufferedBytes <= cap, `held ${env.stack.bufferedBytes}`);
    }
    await tick();
  }
  assert.equal(finished.filter(Boolean).length, n, 'every write completed');
  assert.equal(env.stack.bufferedBytes, 0);
});

test('a flood of completed handshakes, each app writing into a huge window: connections and bytes stay bounded', async () => {
  const cap = 2 * MiB;
  const env = setup({ maxBuffered: cap, sndBuf: 128 * KiB, maxConnections: 200, maxHalfOpen: 64 });
  env.stack.close();
  const writers = setup({ maxBuffered: cap, sndBuf: 128 * KiB, maxConnections: 200, maxHalfOpen: 64 });
  writers.stack.listen(81, (s: TcpSocket) => {
    s.on('error', () => {});
    s.write(new Uint8Array(1 * MiB));
  });
  const rand = prng(3);
  for (let i = 0; i < 2000; i++) {
    const sport = 10_000 + i;
    const src = Uint8Array.from([100, 64, 1 + (i >> 8), i & 0xff]);
    const syn = seg(SYN, 1000, 0, { sport, src, options: { mss: 1200, wscale: 14 } });
    syn[20 + 3] = 81;
    fillTransportChecksum(syn.subarray(20), 16, src, ME, 6);
    writers.stack.deliver(syn);
    const sa = lastTcp(writers.out);
    if (!(sa.flags & SYN)) continue;
    const ackSeg = seg(ACK, 1001, seqAdd(sa.seq, 1), { sport, src, window: 65535 });
    ackSeg[20 + 3] = 81;
    fillTransportChecksum(ackSeg.subarray(20), 16, src, ME, 6);
    writers.stack.deliver(ackSeg);
    if (rand() < 0.01) await tick();
    assert.ok(writers.stack.bufferedBytes <= cap, `held ${writers.stack.bufferedBytes}`);
  }
  await tick();
  assert.ok(writers.stack.connectionCount <= 200);
  assert.ok(writers.stack.bufferedBytes <= cap, `held ${writers.stack.bufferedBytes}`);
  const d = writers.stack.drops;
  assert.ok((d['too-many-connections'] ?? 0) + (d['memory-full-syn'] ?? 0) > 1000, JSON.stringify(d));
  writers.stack.close();
  assert.equal(writers.stack.bufferedBytes, 0);
});

test('bogus SACK blocks (reversed, beyond what was sent, wrapped, malformed) change nothing; real ACKs still drain', async () => {
  const env = setup({ sndBuf: 256 * KiB });
  const { peerSeq, mySeq, sock } = handshake(env, { mss: 1200, wscale: 7, sackOk: true });
  let done = false;
  sock.on('finish', () => {
    done = true;
  });
  sock.end(new Uint8Array(100 * KiB).fill(1));
  await tick();
  const una = mySeq;
  const blocks: [number, number][][] = [
    [[seqAdd(una, 5000), seqAdd(una, 100)]], // reversed
    [[seqAdd(una, 10 * MiB), seqAdd(una, 20 * MiB)]], // beyond SND.MAX
    [[seqAdd(una, -50_000), seqAdd(una, -10)]], // before SND.UNA
    [[0xfffffff0, 0x10]], // wrapping
    [
      [una, una],
      [seqAdd(una, 1), seqAdd(una, 2)],
      [seqAdd(una, 3), seqAdd(una, 1_000_000)],
      [seqAdd(una, 7), seqAdd(una, 8)],
    ],
  ];
  for (let round = 0; round < 50; round++) {
    for (const sack of blocks) env.stack.deliver(seg(ACK, peerSeq, una, { options: { sack } }));
  }
  // Malformed SACK options: odd lengths, a length past the header, a block count that does not fit.
  for (const len of [3, 9, 11, 250, 0]) {
    const p = seg(ACK, peerSeq, una, { options: { sack: [[una, seqAdd(una, 1200)]] } });
    p[20 + 20 + 3] = len; // NOP NOP kind=5 LEN
    fillTransportChecksum(p.subarray(20), 16, PEER, ME, 6);
    env.stack.deliver(p);
  }
  assert.equal(sock.tcpState, 'FIN_WAIT_1');
  assert.ok(env.stack.drops['bad-tcp-option']! >= 3, JSON.stringify(env.stack.drops));
  // Now acknowledge for real, segment by segment.
  let seen = 0;
  let acked = una;
  for (let round = 0; round < 1000 && !done; round++) {
    for (const s of sentSince(env, seen)) {
      const end = seqAdd(s.seq, s.payload.length + (s.flags & FIN ? 1 : 0));
      if (((end - acked) | 0) > 0) acked = end;
    }
    seen = env.out.length;
    env.stack.deliver(seg(ACK, peerSeq, acked, { options: { sack: [[seqAdd(acked, 9), seqAdd(acked, 1)]] } }));
    await tick();
    env.clock.advance(10);
  }
  assert.ok(done, 'the whole write was acknowledged');
  assert.equal(env.stack.bufferedBytes, 0);
});

test('every flag combination and every data offset inside an established connection: no throw, bounded, counted', () => {
  const cap = 512 * KiB;
  const env = setup({ maxBuffered: cap, rcvBuf: 64 * KiB, maxConnections: 8, maxHalfOpen: 8 });
  const { peerSeq, mySeq } = handshake(env);
  const rand = prng(17);
  const payload = new Uint8Array(300);
  for (let i = 0; i < payload.length; i++) payload[i] = Math.floor(rand() * 256);
  for (let flags = 0; flags < 256; flags++) {
    for (let offWords = 0; offWords < 16; offWords++) {
      const at = seqAdd(peerSeq, Math.floor(rand() * 70_000) - 1000);
      const p = seg(flags, at, seqAdd(mySeq, Math.floor(rand() * 3) - 1), {
        payload,
        window: Math.floor(rand() * 65536),
      });
      p[20 + 12] = (offWords << 4) | (p[20 + 12] & 0x0f);
      fillTransportChecksum(p.subarray(20), 16, PEER, ME, 6);
      env.stack.deliver(p);
      assert.ok(env.stack.bufferedBytes <= cap);
    }
    env.clock.advance(50);
  }
  assert.ok(env.stack.connectionCount <= 8);
  const d = env.stack.drops;
  assert.ok(d['bad-tcp-offset']! > 0 && d['bad-tcp-flags']! > 0, JSON.stringify(d));
  env.clock.advance(600_000);
  assert.ok(env.stack.bufferedBytes <= 64 * KiB, 'nothing is held beyond one receive buffer');
});

test('transfers through stacks whose cap is far below their windows still complete intact, held bytes under the cap', async () => {
  const cap = 384 * KiB;
  const { clock, a, b } = makePair(
    77,
    { loss: 0.01, reorder: 0.05, jitterMs: 5, delayMs: 2 },
    { maxBufferedBytes: cap },
  );
  const sums: string[] = [];
  const results: ReturnType<typeof collect>[] = [];
  b.listen(9200, (s) => {
    s.on('error', () => {});
    // A slow reader: pauses now and then, so unread bytes pile up against the cap.
    const c = collect(s);
    let chunks = 0;
    s.on('data', () => {
      if (++chunks % 8 === 0) {
        s.pause();
        setImmediate(() => s.resume());
      }
    });
    s.on('end', () => s.end(c.bytes()));
  });
  for (let i = 0; i < 6; i++) {
    const data = seededBytes(900 + i, 300 * KiB + i * 1000);
    sums.push(sha256(data));
    const s = a.connect(i % 2 ? V4.b : V6.b, 9200);
    s.on('error', (e) => assert.fail(`connection ${i}: ${e.message}`));
    results.push(collect(s));
    s.end(data);
  }
  let peak = 0;
  await runUntil(
    clock,
    () => {
      peak = Math.max(peak, a.bufferedBytes, b.bufferedBytes);
      return results.every((r) => r.done);
    },
    1_200_000,
  );
  results.forEach((r, i) => {
    assert.equal(sha256(r.bytes()), sums[i], `connection ${i} echoed intact`);
  });
  assert.ok(peak <= cap + 6 * 4 * 1240, `peak ${peak} within the cap ${cap} plus the floors`);
  const refused = (a.drops['memory-full'] ?? 0) + (b.drops['memory-full'] ?? 0);
  assert.ok(refused > 0, 'the cap did refuse data on the way (and the transfers recovered)');
});
