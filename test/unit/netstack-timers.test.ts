// TCP timers and windows in the userspace stack, on a manual clock: RTO from measured RTT, exponential backoff
// and give-up, fast retransmit on three duplicate ACKs, zero-window probing, keep-alive and TIME_WAIT bounds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpSocket } from '../../main/engine/netstack/tcp-socket.ts';
import { TCP_FLAGS } from '../../main/engine/packet/parse.ts';
import { collect, makePair, type Pair, runUntil, seededBytes, sha256, V4 } from './netstack-link.ts';

/** The TCP header fields of an IPv4 packet from the link log. */
function tcpOf(p: Uint8Array) {
  const t = p.subarray((p[0] & 0x0f) * 4);
  const v = new DataView(t.buffer, t.byteOffset);
  return {
    seq: v.getUint32(4),
    ack: v.getUint32(8),
    flags: t[13],
    window: v.getUint16(14),
    len: t.length - (t[12] >> 4) * 4,
  };
}

async function connected(pair: Pair): Promise<{ client: TcpSocket; server: TcpSocket }> {
  let server: TcpSocket | undefined;
  pair.b.listen(9000, (s) => {
    server = s;
  });
  const client = pair.a.connect(V4.b, 9000);
  await runUntil(pair.clock, () => server !== undefined && !client.connecting, 10_000);
  return { client, server: server! };
}

test('RTO follows the measured RTT, backs off exponentially and gives up with ETIMEDOUT', async () => {
  const pair = makePair(3, { delayMs: 50 }, { tcp: { maxRetries: 5 } });
  const { client, server } = await connected(pair);
  collect(server);
  client.write(seededBytes(1, 20_000));
  await runUntil(pair.clock, () => client.tcpInfo!.srttMs > 0 && client.tcpInfo!.segments >= 5, 10_000);
  const info = client.tcpInfo!;
  assert.ok(info.srttMs >= 95 && info.srttMs <= 150, `srtt ${info.srttMs} reflects the 100 ms round trip`);
  assert.ok(info.rtoMs >= info.srttMs && info.rtoMs <= 1000, `rto ${info.rtoMs} derived from the RTT`);
  await runUntil(pair.clock, () => pair.a.bufferedBytes === 0, 10_000);
  // Now the link to b goes dark: every retransmission of the next segment is logged with its time.
  pair.link.filter = (_p, from) => from !== 'a';
  pair.link.logging = true;
  let error: NodeJS.ErrnoException | undefined;
  client.on('error', (e) => {
    error = e;
  });
  client.write(seededBytes(2, 1000));
  await runUntil(pair.clock, () => error !== undefined, 600_000);
  assert.equal(error?.code, 'ETIMEDOUT');
  const sends = pair.link.log.filter((e) => e.from === 'a' && tcpOf(e.packet).len === 1000).map((e) => e.at);
  assert.equal(sends.length, 1 + 5, 'first send plus maxRetries retransmissions');
  const gaps = sends.slice(1).map((t, i) => t - sends[i]);
  for (let i = 1; i < gaps.length; i++) {
    assert.ok(
      Math.abs(gaps[i] - 2 * gaps[i - 1]) < 2,
      `gap ${i} (${gaps[i]} ms) doubles the one before (${gaps[i - 1]})`,
    );
  }
  const last = pair.link.log[pair.link.log.length - 1];
  assert.ok(tcpOf(last.packet).flags & TCP_FLAGS.RST, 'the abandoned connection is reset');
  assert.equal(pair.a.connectionCount, 0);
});

test('three duplicate ACKs trigger a fast retransmit well before the RTO', async () => {
  const pair = makePair(4, { delayMs: 20 });
  const { client, server } = await connected(pair);
  const got = collect(server);
  // Warm up so the window is open, then drop exactly one data segment once.
  client.write(seededBytes(5, 50_000));
  await runUntil(pair.clock, () => got.bytes().length === 50_000, 10_000);
  let dropped = -1;
  pair.link.logging = true;
  pair.link.filter = (p, from) => {
    if (from !== 'a' || dropped >= 0) return true;
    const t = tcpOf(p);
    if (t.len === 0) return true;
    dropped = t.seq;
    return false;
  };
  const data = seededBytes(6, 200_000);
  const before = client.tcpInfo!;
  client.write(data);
  await runUntil(pair.clock, () => got.bytes().length === 250_000, 10_000);
  const after = client.tcpInfo!;
  assert.equal(after.fastRetransmits - before.fastRetransmits, 1);
  assert.equal(after.timeouts, before.timeouts, 'no retransmission timeout was needed');
  const sends = pair.link.log.filter(
    (e) => e.from === 'a' && tcpOf(e.packet).seq === dropped && tcpOf(e.packet).len > 0,
  );
  assert.equal(sends.length, 2);
  assert.ok(sends[1].at - sends[0].at < after.rtoMs, 'resent before the RTO would fire');
  assert.equal(sha256(got.bytes().subarray(50_000)), sha256(data));
});

test('a zero window stops the sender, probes back off, and reading resumes the transfer', async () => {
  const pair = makePair(5, { delayMs: 5 }, { tcp: { rcvBuf: 64 * 1024 } });
  const { client, server } = await connected(pair);
  server.pause();
  const data = seededBytes(7, 1 << 20);
  client.end(data);
  pair.link.logging = true;
  await runUntil(pair.clock, () => client.tcpInfo!.probes >= 4, 120_000);
  assert.equal(client.tcpInfo!.sendWindow, 0);
  assert.ok(server.readableLength <= 64 * 1024 + 2 * 1240, `receiver holds ${server.readableLength}, about its buffer`);
  const probes = pair.link.log.filter(
    (e) => e.from === 'a' && tcpOf(e.packet).len === 0 && !(tcpOf(e.packet).flags & TCP_FLAGS.FIN),
  );
  const times = probes.slice(-4).map((e) => e.at);
  assert.ok(times[3] - times[2] > times[2] - times[1], 'probe intervals grow');
  const got = collect(server);
  server.resume();
  await runUntil(pair.clock, () => got.done, 120_000);
  assert.equal(sha256(got.bytes()), sha256(data));
});

test('keep-alive probes keep a quiet connection, and a dead peer is detected', async () => {
  const pair = makePair(6, { delayMs: 5 }, { tcp: { keepAliveIntervalMs: 1000, keepAliveCount: 3 } });
  const { client, server } = await connected(pair);
  collect(server);
  let error: NodeJS.ErrnoException | undefined;
  client.on('error', (e) => {
    error = e;
  });
  client.setKeepAlive(true, 10_000);
  pair.link.logging = true;
  await runUntil(pair.clock, () => pair.clock.now() > 60_000, 70_000);
  assert.equal(error, undefined);
  assert.ok(pair.link.log.filter((e) => e.from === 'a').length >= 5, 'probes were sent while idle');
  assert.equal(client.tcpInfo!.state, 'ESTABLISHED');
  pair.link.filter = () => false;
  const cut = pair.clock.now();
  await runUntil(pair.clock, () => error !== undefined, 60_000);
  assert.equal((error as NodeJS.ErrnoException | undefined)?.code, 'ETIMEDOUT');
  assert.ok(pair.clock.now() - cut <= 10_000 + 4 * 1000 + 10);
});

async function closeBoth(pair: Pair) {
  const { client, server } = await connected(pair);
  collect(server);
  const got = collect(client);
  server.on('end', () => server.end());
  client.end();
  await runUntil(pair.clock, () => got.done && pair.b.connectionCount === 0, 10_000);
}

test('TIME_WAIT lasts its bound and then the connection is gone', async () => {
  const pair = makePair(8, { delayMs: 5 }, { tcp: { timeWaitMs: 5_000 } });
  await closeBoth(pair);
  assert.deepEqual(pair.a.states(), { TIME_WAIT: 1 });
  pair.clock.advance(4_900);
  assert.deepEqual(pair.a.states(), { TIME_WAIT: 1 });
  pair.clock.advance(200);
  assert.equal(pair.a.connectionCount, 0);
});

test('a full connection table recycles TIME_WAIT for a new connection', async () => {
  const pair = makePair(9, { delayMs: 5 }, { tcp: { timeWaitMs: 60_000 }, maxConnections: 1 });
  await closeBoth(pair);
  assert.deepEqual(pair.a.states(), { TIME_WAIT: 1 });
  const second = pair.a.connect(V4.b, 9000);
  await runUntil(pair.clock, () => !second.connecting, 10_000);
  assert.deepEqual(pair.a.states(), { ESTABLISHED: 1 });
  // With the table full and nothing to recycle, a third connection is refused with a plain error.
  assert.throws(() => pair.a.connect(V4.b, 9000), /too many TCP connections/);
});
