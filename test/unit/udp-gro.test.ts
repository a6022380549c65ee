// UDP GRO receive in the native UdpBatchSocket, on loopback for real: sendMany turns runs of equal-sized
// datagrams into UDP_SEGMENT (GSO) trains, loopback keeps each train one buffer, and a socket with UDP_GRO gets it
// whole; the addon must hand every datagram out in its own slot, in order, with its source, across callbacks when
// a read brings more than one batch. The addon must be built (test/setup/prereqs.sh does it).
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import {
  type NativeUdpBatchSocket,
  UDP_MAX_BATCH,
  UDP_SLOT_BYTES,
  UDP_TRUNCATED,
  UdpBatchSocket,
} from '../../main/engine/tun/native.ts';
import { waitFor } from './wait-for.ts';

const skip = process.platform === 'linux' ? false : 'UDP GRO and recvmmsg/sendmmsg are Linux-only';

const LOOP4 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
const LOOP6 = new Uint8Array(16);
LOOP6[15] = 1;

function open(t: TestContext, family: 4 | 6): NativeUdpBatchSocket {
  const s = new UdpBatchSocket(family, family === 4 ? '127.0.0.1' : '::1', 0);
  t.after(() => s.close());
  return s;
}

/** The receiver must have UDP_GRO (any Linux since 5.0): without it these tests would prove nothing. */
function requireGro(t: TestContext, s: NativeUdpBatchSocket): boolean {
  if (s.gro) return true;
  const msg = 'this kernel refused UDP_GRO: GRO receive is not exercised';
  if (process.env.CI === 'true') throw new Error(msg);
  t.skip(msg);
  return false;
}

interface Got {
  data: Buffer | null;
  addr: string;
  port: number;
}

/** Collects every datagram, and the size of every callback's batch. */
function collect(sock: NativeUdpBatchSocket): { got: Got[]; batches: number[] } {
  const got: Got[] = [];
  const batches: number[] = [];
  sock.start((buf, lengths, addrs, ports, count) => {
    batches.push(count);
    for (let i = 0; i < count; i++) {
      const len = lengths[i];
      const off = i * UDP_SLOT_BYTES;
      got.push({
        data: len === UDP_TRUNCATED ? null : Buffer.from(buf.subarray(off, off + len)),
        addr: Buffer.from(addrs.subarray(i * 16, i * 16 + 16)).toString('hex'),
        port: ports[i],
      });
    }
  });
  return { got, batches };
}

/** Datagrams whose bytes say which one they are. */
function datagrams(sizes: number[], tag: number): Buffer[] {
  return sizes.map((n, i) => {
    const d = Buffer.alloc(n);
    for (let j = 0; j < n; j++) d[j] = (i * 31 + j * 7 + tag) & 0xff;
    return d;
  });
}

function assertAll(got: Got[], sent: Buffer[], from: Uint8Array, port: number): void {
  assert.equal(got.length, sent.length);
  const addr = Buffer.from(from).toString('hex');
  got.forEach((g, i) => {
    assert.deepEqual(g.data, sent[i], `datagram ${i} (${sent[i].length} bytes)`);
    assert.equal(g.addr, addr, `source address of datagram ${i}`);
    assert.equal(g.port, port, `source port of datagram ${i}`);
  });
}

test('UDP GRO: a GSO train ending in a shorter datagram arrives whole, in order', { skip }, async (t) => {
  const a = open(t, 4);
  const b = open(t, 4);
  if (!requireGro(t, b)) return;
  const { got } = collect(b);
  const sent = datagrams([...Array(40).fill(1300), 200], 1);
  assert.equal(a.sendMany(sent, sent.length, LOOP4, b.port), sent.length);
  await waitFor('41 datagrams', () => got.length === sent.length);
  assertAll(got, sent, LOOP4, a.port);
  assert.ok(b.coalesced >= 2, `the train came coalesced (${b.coalesced} datagrams in trains)`);
});

test('UDP GRO: trains bigger than a batch are handed out over several callbacks', { skip }, async (t) => {
  const a = open(t, 4);
  const b = open(t, 4);
  if (!requireGro(t, b)) return;
  const { got, batches } = collect(b);
  // Sent in one go, so one read finds several trains (~50 datagrams each) queued: the slots fill up mid-train.
  const sizes = [...Array(300).fill(1280), 999, ...Array(37).fill(1100), 0, ...Array(5).fill(1)];
  const sent = datagrams(sizes, 2);
  assert.equal(a.sendMany(sent, sent.length, LOOP4, b.port), sent.length);
  await waitFor(`${sent.length} datagrams`, () => got.length === sent.length);
  assertAll(got, sent, LOOP4, a.port);
  assert.ok(
    batches.every((n) => n >= 1 && n <= UDP_MAX_BATCH),
    `batches of 1..${UDP_MAX_BATCH}: ${batches}`,
  );
  assert.ok(batches.filter((n) => n === UDP_MAX_BATCH).length >= 4, `full batches: ${batches}`);
  assert.ok(b.coalesced >= 300, `${b.coalesced} datagrams came in trains`);
});

test('UDP GRO: leftovers of one read and a fresh read share a callback', { skip }, async (t) => {
  const a = open(t, 4);
  const b = open(t, 4);
  if (!requireGro(t, b)) return;
  const { got } = collect(b);
  // Sizes that mostly grow: a datagram followed by a shorter one makes a 2-datagram train, the rest go alone. The
  // first read (64 messages) brings more than 64 datagrams; the next callback starts with what is left over.
  const sent = datagrams(
    Array.from({ length: 150 }, (_, i) => 1 + ((i * 397) % UDP_SLOT_BYTES)),
    8,
  );
  assert.equal(a.sendMany(sent, sent.length, LOOP4, b.port), sent.length);
  await waitFor(`${sent.length} datagrams`, () => got.length >= sent.length);
  await new Promise((r) => setTimeout(r, 50)); // nothing more may come
  assertAll(got, sent, LOOP4, a.port);
  assert.ok(b.coalesced >= 2, `${b.coalesced} datagrams came in trains`);
});

test('UDP GRO: trains of 1-byte datagrams (64 per train) and several sources', { skip }, async (t) => {
  const a = open(t, 4);
  const c = open(t, 4);
  const b = open(t, 4);
  if (!requireGro(t, b)) return;
  const { got } = collect(b);
  const fromA = datagrams(Array(300).fill(1), 3);
  const fromC = datagrams(Array(150).fill(700), 4);
  assert.equal(a.sendMany(fromA, fromA.length, LOOP4, b.port), fromA.length);
  assert.equal(c.sendMany(fromC, fromC.length, LOOP4, b.port), fromC.length);
  await waitFor('450 datagrams', () => got.length === 450);
  // Each sender's datagrams in its order, each with its own source port.
  assertAll(
    got.filter((g) => g.port === a.port),
    fromA,
    LOOP4,
    a.port,
  );
  assertAll(
    got.filter((g) => g.port === c.port),
    fromC,
    LOOP4,
    c.port,
  );
});

test('UDP GRO: datagrams of a train longer than a slot are reported truncated, one by one', { skip }, async (t) => {
  const a = open(t, 4);
  const b = open(t, 4);
  if (!requireGro(t, b)) return;
  const { got } = collect(b);
  const long = datagrams(Array(3).fill(UDP_SLOT_BYTES + 904), 5);
  assert.equal(a.sendMany(long, long.length, LOOP4, b.port), 3);
  const after = datagrams([UDP_SLOT_BYTES, UDP_SLOT_BYTES], 6);
  assert.equal(a.sendMany(after, after.length, LOOP4, b.port), 2);
  await waitFor('5 datagrams', () => got.length === 5);
  assert.deepEqual(
    got.slice(0, 3).map((g) => g.data),
    [null, null, null],
  );
  assert.deepEqual(got[3].data, after[0]);
  assert.deepEqual(got[4].data, after[1]);
});

test('UDP GRO: IPv6 trains', { skip }, async (t) => {
  const a = open(t, 6);
  const b = open(t, 6);
  if (!requireGro(t, b)) return;
  const { got } = collect(b);
  const sent = datagrams([...Array(100).fill(1232), 17], 7);
  assert.equal(a.sendMany(sent, sent.length, LOOP6, b.port), sent.length);
  await waitFor('101 IPv6 datagrams', () => got.length === sent.length);
  assertAll(got, sent, LOOP6, a.port);
  assert.ok(b.coalesced >= 2, `${b.coalesced} datagrams came in trains`);
});
