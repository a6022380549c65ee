// Hostile input to the userspace stack: malformed segments, impossible flags, out-of-window data and ACKs, huge
// windows, tiny out-of-order pieces, SYN floods, connection limits and random garbage. Every one is dropped and
// counted (or answered as TCP says), nothing throws, and memory stays bounded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PIECES } from '../../main/engine/netstack/reassembly.ts';
import { fillTransportChecksum, seqAdd, TCP_FLAGS } from '../../main/engine/netstack/segment.ts';
import { prng } from './netstack-link.ts';
import { handshake, lastTcp, ME, PEER, seg, setup } from './netstack-raw.ts';

const { SYN, ACK, FIN, RST, PSH } = TCP_FLAGS;

test('malformed segments and impossible flags are dropped and counted, with no connection made', () => {
  const env = setup();
  const good = seg(SYN, 1, 0);
  const badOffsetLow = Uint8Array.from(good);
  badOffsetLow[20 + 12] = 4 << 4; // 16-byte header
  const badOffsetHigh = Uint8Array.from(good);
  badOffsetHigh[20 + 12] = 15 << 4; // 60-byte header in a 20-byte segment
  const badSum = Uint8Array.from(good);
  badSum[20 + 16] ^= 0xff;
  const truncated = good.subarray(0, 30);
  for (const p of [badOffsetLow, badOffsetHigh, badSum, truncated]) env.stack.deliver(p);
  env.stack.deliver(seg(SYN | FIN, 1, 0));
  env.stack.deliver(seg(SYN | RST, 1, 0));
  env.stack.deliver(seg(RST | FIN, 1, 0));
  const badOption = seg(SYN, 1, 0, { options: { mss: 1000 } });
  badOption[20 + 21] = 40; // MSS option length runs past the header
  fillTransportChecksum(badOption.subarray(20), 16, PEER, ME, 6);
  env.stack.deliver(badOption);
  env.stack.deliver(seg(0, 1, 0)); // no flags at all, no connection: answered with RST
  assert.equal(env.stack.connectionCount, 0);
  const d = env.stack.drops;
  assert.equal(d['bad-tcp-offset'], 2, JSON.stringify(d));
  assert.equal(d.truncated, 1);
  assert.equal(d['bad-tcp-option'], 1);
  assert.equal(d['bad-checksum'], 1);
  assert.equal(d['bad-tcp-flags'], 3);
  assert.equal(d['no-connection'], 1);
});

test('in an established connection: out-of-window data, bad RSTs, stray SYNs and ACKs of unsent data change nothing', async () => {
  const env = setup({ rcvBuf: 16 * 1024 });
  const { peerSeq, mySeq } = handshake(env);
  const sock = env.accepted[0];
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  env.stack.deliver(seg(ACK | PSH, seqAdd(peerSeq, 10_000_000), mySeq, { payload: new Uint8Array(100) }));
  assert.equal(env.stack.drops['out-of-window'], 1);
  assert.equal(lastTcp(env.out).ack, peerSeq, 'answered with an ACK of what was really received');
  env.stack.deliver(seg(RST, seqAdd(peerSeq, 5), 0));
  assert.equal(env.stack.drops['rst-not-exact'], 1);
  env.stack.deliver(seg(SYN, seqAdd(peerSeq, 3), 0));
  assert.equal(env.stack.drops['syn-in-window'], 1);
  env.stack.deliver(seg(ACK, peerSeq, seqAdd(mySeq, 1_000_000)));
  assert.equal(env.stack.drops['ack-of-unsent'], 1);
  assert.equal(sock.tcpState, 'ESTABLISHED');
  // A segment that overruns the window is trimmed to it: no more than rcvBuf is ever held.
  env.stack.deliver(seg(ACK, peerSeq, mySeq, { payload: new Uint8Array(40_000).fill(7) }));
  await new Promise((r) => setImmediate(r)); // the turn ends: the received bytes reach the stream
  const received = chunks.reduce((n, c) => n + c.length, 0) + sock.readableLength;
  assert.ok(received > 0 && received <= 16 * 1024, `received ${received}`);
  // An exact RST does reset it.
  let err: NodeJS.ErrnoException | undefined;
  sock.on('error', (e) => {
    err = e;
  });
  env.stack.deliver(seg(RST, seqAdd(peerSeq, received), 0));
  assert.equal(env.stack.connectionCount, 0);
  return new Promise<void>((r) =>
    setImmediate(() => {
      assert.equal(err?.code, 'ECONNRESET');
      r();
    }),
  );
});

test('a huge advertised window does not let the send buffer grow past its bound', () => {
  const env = setup({ sndBuf: 32 * 1024 });
  const { peerSeq, mySeq } = handshake(env, { mss: 1200, wscale: 30 }); // shift clamped to 14
  const sock = env.accepted[0];
  let accepted = 0;
  for (let i = 0; i < 100; i++) if (sock.write(new Uint8Array(8192))) accepted++;
  env.stack.deliver(seg(ACK, peerSeq, mySeq, { window: 65535 }));
  assert.ok(env.stack.bufferedBytes <= 32 * 1024, `buffered ${env.stack.bufferedBytes}`);
  assert.ok(accepted < 100, 'writes report back-pressure');
  assert.ok(sock.tcpInfo!.sendWindow >= 65535 * 2 ** 13, 'the window is scaled');
});

test('tiny out-of-order pieces are capped and held bytes stay within the window', () => {
  const env = setup({ rcvBuf: 64 * 1024 });
  const { peerSeq, mySeq } = handshake(env);
  for (let i = 1; i < 2000; i++) {
    env.stack.deliver(seg(ACK, seqAdd(peerSeq, i * 2), mySeq, { payload: new Uint8Array(1) }));
  }
  assert.ok(env.stack.drops['reassembly-full']! > 0);
  assert.ok(env.stack.bufferedBytes <= MAX_PIECES);
  assert.equal(env.accepted[0].tcpState, 'ESTABLISHED');
});

test('a SYN flood fills only the half-open table, which drains; then a real client connects', () => {
  const env = setup({ maxHalfOpen: 64, maxConnections: 128 });
  const rand = prng(5);
  for (let i = 0; i < 10_000; i++) {
    const src = Uint8Array.from([100, 64, Math.floor(rand() * 256), Math.floor(rand() * 256)]);
    env.stack.deliver(seg(SYN, Math.floor(rand() * 2 ** 32), 0, { src, sport: 1024 + i }));
  }
  assert.equal(env.stack.halfOpenCount, 64);
  assert.equal(env.stack.drops['syn-backlog-full'], 10_000 - 64);
  // SYN-ACK retransmissions give up after synRetries; the table empties.
  env.clock.advance(200_000);
  assert.equal(env.stack.connectionCount, 0);
  assert.equal(env.stack.drops['syn-received-timeout'], 64);
  handshake(env);
  assert.equal(env.stack.connectionCount, 1);
});

test('established connections are bounded in number', () => {
  const env = setup({ maxConnections: 8 });
  for (let i = 0; i < 20; i++) {
    env.stack.deliver(seg(SYN, 1000, 0, { sport: 2000 + i }));
    const sa = lastTcp(env.out);
    env.stack.deliver(seg(ACK, 1001, seqAdd(sa.seq, 1), { sport: 2000 + i }));
  }
  assert.equal(env.stack.connectionCount, 8);
  assert.equal(env.accepted.length, 8);
  assert.ok(env.stack.drops['too-many-connections']! >= 12);
});

test('random and mutated packets never throw and leave bounded state', () => {
  const env = setup({ maxConnections: 64, maxHalfOpen: 32 });
  const { peerSeq, mySeq } = handshake(env);
  const rand = prng(1234);
  const templates = [
    seg(ACK | PSH, peerSeq, mySeq, { payload: new Uint8Array(300) }),
    seg(SYN, 5, 0, { options: { mss: 1, wscale: 200, sackOk: true } }),
    seg(FIN | ACK, peerSeq, mySeq),
  ];
  for (let i = 0; i < 20_000; i++) {
    let p: Uint8Array;
    if (i % 3 === 0) {
      p = new Uint8Array(Math.floor(rand() * 120));
      for (let j = 0; j < p.length; j++) p[j] = Math.floor(rand() * 256);
      if (p.length) p[0] = rand() < 0.5 ? 0x45 : 0x60;
    } else {
      p = Uint8Array.from(templates[i % templates.length]);
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips; k++) p[Math.floor(rand() * p.length)] = Math.floor(rand() * 256);
    }
    env.stack.deliver(p);
    if (i % 1000 === 0) env.clock.advance(500);
  }
  assert.ok(env.stack.connectionCount <= 64);
  assert.ok(env.stack.bufferedBytes <= 64 * 1024 * 2);
  const total = Object.values(env.stack.drops).reduce((x, y) => x + y, 0);
  assert.ok(total > 10_000, `drops counted: ${total}`);
});

test('out-of-order data across many connections stays within the stack-wide budget, and is returned on close', () => {
  const env = setup({ rcvBuf: 64 * 1024, maxReassembly: 100 * 1024 });
  const acks: number[] = [];
  for (let c = 0; c < 40; c++) {
    const sport = 3000 + c;
    env.stack.deliver(seg(SYN, 1000, 0, { sport, options: { mss: 1200, wscale: 7 } }));
    const sa = lastTcp(env.out);
    env.stack.deliver(seg(ACK, 1001, seqAdd(sa.seq, 1), { sport }));
    acks.push(seqAdd(sa.seq, 1));
    // A hole at 1001, then 40 KB beyond it.
    for (let i = 1; i <= 40; i++) {
      env.stack.deliver(seg(ACK, 1001 + i * 1000, seqAdd(sa.seq, 1), { sport, payload: new Uint8Array(1000) }));
    }
    assert.ok(env.stack.reassemblyBytes <= 100 * 1024, `held ${env.stack.reassemblyBytes}`);
  }
  assert.ok(env.stack.drops['reassembly-full']! > 1000);
  assert.ok(env.stack.reassemblyBytes > 90 * 1024, 'the budget was used, not refused outright');
  // Filling a hole releases its connection's share; closing the stack releases the rest.
  const before = env.stack.reassemblyBytes;
  env.stack.deliver(seg(ACK, 1001, acks[0], { sport: 3000, payload: new Uint8Array(1000) }));
  assert.ok(env.stack.reassemblyBytes <= before - 40_000, "the first connection's queue was delivered");
  env.stack.close();
  assert.equal(env.stack.reassemblyBytes, 0);
});

test('with SACK agreed, ACKs name the out-of-order blocks held, the most recent first (RFC 2018)', () => {
  const env = setup();
  env.stack.deliver(seg(SYN, 1000, 0, { options: { mss: 1200, wscale: 7, sackOk: true } }));
  const synAck = lastTcp(env.out);
  assert.equal(synAck.options.sackOk, true, 'the SYN-ACK agrees to SACK');
  const ack = seqAdd(synAck.seq, 1);
  env.stack.deliver(seg(ACK, 1001, ack));
  const at = (off: number) => seqAdd(1001, off);
  env.stack.deliver(seg(ACK, at(1000), ack, { payload: new Uint8Array(500) }));
  assert.deepEqual(lastTcp(env.out).options.sack, [[at(1000), at(1500)]]);
  env.stack.deliver(seg(ACK, at(3000), ack, { payload: new Uint8Array(500) }));
  assert.deepEqual(lastTcp(env.out).options.sack, [
    [at(3000), at(3500)],
    [at(1000), at(1500)],
  ]);
  env.stack.deliver(seg(ACK, at(1500), ack, { payload: new Uint8Array(500) })); // extends the first block
  assert.deepEqual(lastTcp(env.out).options.sack, [
    [at(1000), at(2000)],
    [at(3000), at(3500)],
  ]);
  env.stack.deliver(seg(ACK, at(0), ack, { payload: new Uint8Array(1000) })); // fills the first hole
  const filled = lastTcp(env.out);
  assert.equal(filled.ack, at(2000));
  assert.deepEqual(filled.options.sack, [[at(3000), at(3500)]]);
  // Without SACK offered, no blocks.
  const plain = setup();
  plain.stack.deliver(seg(SYN, 1000, 0, { options: { mss: 1200 } }));
  const sa = lastTcp(plain.out);
  assert.equal(sa.options.sackOk, undefined);
  plain.stack.deliver(seg(ACK, 1001, seqAdd(sa.seq, 1)));
  plain.stack.deliver(seg(ACK, at(1000), seqAdd(sa.seq, 1), { payload: new Uint8Array(10) }));
  assert.equal(lastTcp(plain.out).options.sack, undefined);
});
