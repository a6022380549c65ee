// The userspace stack end to end: two stacks back to back over a simulated link with loss, reordering,
// duplication, corruption and delay (seeded, on a manual clock). Multi-megabyte transfers in both directions at
// once, over IPv4 and IPv6, arrive intact (sha256 equal) and every connection closes cleanly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpSocket } from '../../main/engine/netstack/tcp-socket.ts';
import { collect, type Impairment, makePair, runUntil, seededBytes, sha256, V4, V6 } from './netstack-link.ts';

async function transfer(
  seed: number,
  family: 4 | 6,
  imp: Impairment,
  size: number,
  reuseBuffers = false,
  outputCopies = false,
) {
  const { clock, link, a, b } = makePair(seed, imp, { outputCopies });
  link.reuseBuffers = reuseBuffers;
  link.copyPackets = outputCopies;
  const up = seededBytes(seed + 1, size);
  const down = seededBytes(seed + 2, size);
  let server: ReturnType<typeof collect> | undefined;
  let serverSocket: TcpSocket | undefined;
  b.listen(8080, (s) => {
    serverSocket = s;
    server = collect(s);
    s.end(down);
  });
  const client = a.connect(family === 4 ? V4.b : V6.b, 8080);
  const got = collect(client);
  let connected = false;
  client.on('connect', () => {
    connected = true;
  });
  client.end(up);
  const closed = () => a.connectionCount === 0 && b.connectionCount === 0;
  const simMs = await runUntil(clock, () => got.done && !!server?.done && client.writableFinished, 3_600_000);
  assert.ok(connected);
  assert.equal(sha256(server!.bytes()), sha256(up), 'client to server bytes intact');
  assert.equal(sha256(got.bytes()), sha256(down), 'server to client bytes intact');
  assert.equal(serverSocket!.remoteAddress, family === 4 ? V4.a : V6.a);
  // Both ends close; TIME_WAIT ends after its bound; then nothing is left.
  await runUntil(clock, closed, 3_600_000);
  clock.advance(10_000); // let packets still on the link land
  return { simMs, link: link.counters, a, b };
}

test('clean link: 2 MB each way over IPv4 arrive intact and the connection closes', async () => {
  const r = await transfer(1, 4, { delayMs: 5 }, 2 * 1024 * 1024);
  assert.equal(r.link.lost, 0);
});

test('lossy link (3% loss, reordering, duplication, corruption): 4 MB each way over IPv4', async () => {
  const r = await transfer(
    7,
    4,
    { loss: 0.03, reorder: 0.05, jitterMs: 8, duplicate: 0.02, corrupt: 0.01, delayMs: 4 },
    4 << 20,
  );
  assert.ok(r.link.lost > 100 && r.link.corrupted > 10 && r.link.duplicated > 10 && r.link.reordered > 10);
  // Every bit of an IPv4 packet is under a checksum (the header's own, or the transport's): each corrupted packet
  // is dropped before TCP sees it, and counted.
  // A flip in the version nibble (4 to 6) makes it an IPv6 packet to an address that is not ours: not-local.
  const caught = (d: Record<string, number>) =>
    (d['bad-ip-checksum'] ?? 0) +
    (d['bad-checksum'] ?? 0) +
    (d['bad-tcp-offset'] ?? 0) +
    (d['short-tcp'] ?? 0) +
    (d['not-local'] ?? 0);
  assert.equal(caught(r.a.drops) + caught(r.b.drops), r.link.corrupted, JSON.stringify([r.a.drops, r.b.drops]));
  assert.ok((r.a.drops['bad-ip-checksum'] ?? 0) + (r.b.drops['bad-ip-checksum'] ?? 0) > 0, 'IP header damage too');
});

test('lossy link: 4 MB each way over IPv6', async () => {
  await transfer(
    11,
    6,
    { loss: 0.02, reorder: 0.05, jitterMs: 8, duplicate: 0.02, corrupt: 0.01, delayMs: 10 },
    4 << 20,
  );
});

test('input buffers reused by the data path right after deliver(): bytes still arrive intact', async () => {
  await transfer(13, 4, { loss: 0.02, reorder: 0.1, jitterMs: 8, delayMs: 3 }, 1 << 20, true);
});

test('stacks that build every segment in one reused output buffer (outputCopies): 2 MB each way, IPv4 and IPv6', async () => {
  const imp = { loss: 0.02, reorder: 0.05, jitterMs: 8, duplicate: 0.02, corrupt: 0.01, delayMs: 4 };
  await transfer(17, 4, imp, 2 << 20, true, true);
  await transfer(19, 6, imp, 2 << 20, true, true);
});

test('closing the stack fails open sockets with a plain ECONNABORTED and resets the peer', async () => {
  const { clock, a, b } = makePair(21, { delayMs: 2 });
  let server: TcpSocket | undefined;
  b.listen(7000, (s) => {
    server = s;
  });
  const client = a.connect(V4.b, 7000);
  await runUntil(clock, () => server !== undefined && !client.connecting, 10_000);
  const errors: NodeJS.ErrnoException[] = [];
  client.on('error', (e) => errors.push(e));
  server!.on('error', (e) => errors.push(e));
  a.close();
  await runUntil(clock, () => errors.length === 2, 10_000);
  assert.deepEqual(errors.map((e) => e.code).sort(), ['ECONNABORTED', 'ECONNRESET']);
  assert.match(errors.find((e) => e.code === 'ECONNABORTED')!.message, /network stack was shut down/);
  assert.equal(a.connectionCount + b.connectionCount, 0);
});

test('twenty seeds of a harsh link (up to 10% loss, heavy reordering): every transfer completes intact', async () => {
  for (let seed = 200; seed < 220; seed++) {
    const loss = [0.01, 0.04, 0.07, 0.1][seed % 4];
    const imp = { loss, reorder: 0.2, jitterMs: 15, duplicate: 0.05, corrupt: 0.03, delayMs: 2 + (seed % 7) };
    await transfer(seed, seed % 2 ? 4 : 6, imp, 256 * 1024);
  }
});

test('fifty concurrent connections over one lossy link all deliver intact and all close', async () => {
  const { clock, a, b } = makePair(31, { loss: 0.02, reorder: 0.05, jitterMs: 6, delayMs: 3 });
  const sums = new Map<number, string>();
  const serverDone: ReturnType<typeof collect>[] = [];
  b.listen(9100, (s) => {
    const c = collect(s);
    serverDone.push(c);
    s.on('end', () => {
      const body = c.bytes();
      s.end(body); // echo it back once the client has finished sending
    });
  });
  const clients = Array.from({ length: 50 }, (_, i) => {
    const data = seededBytes(500 + i, 20_000 + i * 1000);
    sums.set(i, sha256(data));
    const s = a.connect(i % 2 ? V4.b : V6.b, 9100);
    const got = collect(s);
    s.end(data);
    return got;
  });
  await runUntil(clock, () => clients.every((c) => c.done), 600_000);
  clients.forEach((c, i) => {
    assert.equal(sha256(c.bytes()), sums.get(i), `connection ${i} echoed intact`);
  });
  await runUntil(clock, () => a.connectionCount === 0 && b.connectionCount === 0, 600_000);
  assert.equal(serverDone.length, 50);
});
