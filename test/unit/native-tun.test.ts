// The native addon against the real kernel: a TUN device carrying UDP both ways through the host stack, the
// recvmmsg/sendmmsg socket on loopback, errno codes on failures, and exceptions thrown by callbacks.
// The TUN tests need root and /dev/net/tun: under CI (CI=true) their absence fails them; elsewhere they are
// skipped with a loud message. The addon must be built (test/setup/prereqs.sh does it).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { accessSync, constants } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { type TestContext, test } from 'node:test';
import {
  NATIVE_ADDON_PATH,
  type NativeSystemError,
  type NativeTunDevice,
  type NativeUdpBatchSocket,
  nativeAvailable,
  TunDevice,
  UDP_SLOT_BYTES,
  UDP_TRUNCATED,
  UdpBatchSocket,
  udpBatchAvailable,
} from '../../main/engine/tun/native.ts';
import { waitFor } from './wait-for.ts';

const linuxOnly = process.platform === 'linux' ? false : 'recvmmsg/sendmmsg and these TUN checks are Linux-only';

/** True when TUN tests can run; otherwise fails (CI) or skips loudly and returns false. */
function requireTun(t: TestContext): boolean {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    missing.push('/dev/net/tun');
  }
  if (spawnSync('ip', ['-V']).status !== 0) missing.push('ip (iproute2)');
  if (missing.length === 0) return true;
  const msg = `TUN test prerequisites missing: ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`${msg}; under CI this is a failure, not a skip`);
  console.error(`\n!!!!! SKIPPING "${t.name}": ${msg} !!!!!\n`);
  t.skip(msg);
  return false;
}

function assertSysError(fn: () => unknown, code: string): NativeSystemError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected a thrown Error with code ${code}`);
  const err = caught as NativeSystemError;
  assert.equal(err.code, code, err.message);
  assert.equal(typeof err.errno, 'number');
  assert.equal(typeof err.syscall, 'string');
  assert.ok(err.message.includes(code), err.message);
  return err;
}

function onesSum(data: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < data.length; i += 2) s += (data[i] << 8) | data[i + 1];
  if (data.length & 1) s += data[data.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const ip4 = (a: string): Uint8Array => Uint8Array.from(a.split('.').map(Number));

/** A full IPv4/UDP packet with correct header and UDP checksums. */
function udp4Packet(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const udpLen = 8 + payload.length;
  const p = new Uint8Array(20 + udpLen);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(4, 0x1234);
  p[6] = 0x40; // DF
  p[8] = 64;
  p[9] = 17;
  p.set(ip4(src), 12);
  p.set(ip4(dst), 16);
  v.setUint16(10, ~onesSum(p.subarray(0, 20)) & 0xffff);
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  v.setUint16(24, udpLen);
  p.set(payload, 28);
  const pseudo = new Uint8Array([...ip4(src), ...ip4(dst), 0, 17, udpLen >> 8, udpLen & 0xff]);
  const sum = ~onesSum(p.subarray(20), onesSum(pseudo)) & 0xffff;
  v.setUint16(26, sum === 0 ? 0xffff : sum);
  return p;
}

/** ::ffff:a.b.c.d */
function mapped(a: string): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(ip4(a), 12);
  return out;
}

/**
 * A documentation /24 unused on this machine, as [local, peer] addresses. The TUN holds the route, so
 * nothing leaves the host; a range the machine itself sits on (CI hosts may use 192.0.2.0/24) is skipped.
 */
function freeSubnet(): [string, string] {
  const inUse =
    execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' }) +
    execFileSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' });
  for (const net of ['198.51.100.', '203.0.113.', '192.0.2.']) {
    if (!inUse.includes(net)) return [`${net}1`, `${net}2`];
  }
  throw new Error('every documentation /24 is in use on this machine');
}

function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

test('the addon is built and loads', () => {
  assert.ok(nativeAvailable(), `native addon not loadable from ${NATIVE_ADDON_PATH}: run npm install`);
  assert.equal(udpBatchAvailable(), process.platform === 'linux');
});

test('TunDevice: a name longer than 15 bytes throws ENAMETOOLONG', { skip: linuxOnly }, () => {
  const err = assertSysError(() => new TunDevice('trellis-too-long-name'), 'ENAMETOOLONG');
  assert.match(err.message, /trellis-too-long-name/);
});

test('TunDevice: UDP through the host stack both ways', { skip: linuxOnly, timeout: 20_000 }, async (t) => {
  if (!requireTun(t)) return;
  const name = `trtun${randomBytes(3).toString('hex')}`;
  const dev: NativeTunDevice = new TunDevice(name);
  const sockets: dgram.Socket[] = [];
  t.after(() => {
    dev.close();
    for (const s of sockets) s.close();
  });
  assert.equal(dev.name, name);
  assert.ok(dev.fd >= 0);
  assert.ok(dev instanceof TunDevice);
  // A second open of a live, non-multiqueue TUN is refused with EBUSY.
  assertSysError(() => new TunDevice(name), 'EBUSY');

  const packets: Buffer[] = [];
  let batches = 0;
  let sameBuffer: Buffer | undefined;
  dev.start((buf, lengths, count) => {
    batches++;
    sameBuffer ??= buf;
    assert.equal(buf, sameBuffer, 'the batch Buffer is reused');
    let off = 0;
    for (let i = 0; i < count; i++) {
      packets.push(Buffer.from(buf.subarray(off, off + lengths[i])));
      off += lengths[i];
    }
  });
  const [local, peer] = freeSubnet();
  execFileSync('ip', ['addr', 'add', `${local}/24`, 'dev', name]);
  execFileSync('ip', ['link', 'set', 'dev', name, 'up']);

  // Host -> TUN: a datagram routed to the peer address comes out of the device as an IPv4 packet.
  const payload = Buffer.from(`trellis-out-${randomBytes(8).toString('hex')}`);
  const out = dgram.createSocket('udp4');
  sockets.push(out);
  await new Promise<void>((r) => out.bind(0, local, r));
  out.send(payload, 9, peer);
  const isOurs = (p: Buffer) => p[0] >> 4 === 4 && p[9] === 17 && p.subarray(16, 20).equals(ip4(peer));
  await waitFor('the datagram on the TUN', () => packets.some(isOurs));
  const pkt = packets.find(isOurs) as Buffer;
  assert.ok(batches >= 1);
  const ihl = (pkt[0] & 0x0f) * 4;
  assert.equal(pkt.readUInt16BE(2), pkt.length, 'IP total length matches the packet length');
  assert.equal(onesSum(pkt.subarray(0, ihl)), 0xffff, 'kernel IP header checksum verifies');
  assert.deepEqual(pkt.subarray(12, 16), Buffer.from(ip4(local)));
  assert.equal(pkt.readUInt16BE(ihl + 2), 9);
  assert.equal(pkt.readUInt16BE(ihl), out.address().port);
  assert.deepEqual(pkt.subarray(ihl + 8), payload);

  // TUN -> host: crafted packets from the peer reach a socket bound to the local address.
  const inbox: Array<{ msg: Buffer; address: string; port: number }> = [];
  const sink = dgram.createSocket('udp4');
  sockets.push(sink);
  sink.on('message', (msg, rinfo) => inbox.push({ msg, address: rinfo.address, port: rinfo.port }));
  await new Promise<void>((r) => sink.bind(0, local, r));
  const port = sink.address().port;
  const inPayload = Buffer.from(`trellis-in-${randomBytes(8).toString('hex')}`);
  assert.equal(dev.write(udp4Packet(peer, local, 40000, port, inPayload)), true);
  await waitFor('the crafted datagram', () => inbox.length === 1);
  assert.deepEqual(inbox[0], { msg: inPayload, address: peer, port: 40000 });

  const many = [1, 2, 3].map((i) => udp4Packet(peer, local, 40000 + i, port, Buffer.from(`many-${i}`)));
  assert.equal(dev.writeMany(many, 3), 3);
  await waitFor('writeMany datagrams', () => inbox.length === 4);
  assert.deepEqual(
    inbox.slice(1).map((m) => `${m.port}:${m.msg.toString()}`),
    ['40001:many-1', '40002:many-2', '40003:many-3'],
  );
  assert.throws(() => dev.writeMany(many, 4), RangeError);

  dev.stop();
  dev.close();
  dev.close(); // idempotent
  assert.equal(dev.closed, true);
  assert.equal(dev.fd, -1);
  await waitFor('the link to disappear', () => !linkExists(name));
  assertSysError(() => dev.write(many[0]), 'EBADF');
});

test('TunDevice: deleting the interface while reading reports EBADFD', { skip: linuxOnly }, async (t) => {
  if (!requireTun(t)) return;
  const name = `trdel${randomBytes(3).toString('hex')}`;
  const dev = new TunDevice(name);
  t.after(() => dev.close());
  let failure: NativeSystemError | undefined;
  dev.start(
    () => {},
    (err) => {
      failure = err;
    },
  );
  execFileSync('ip', ['link', 'set', 'dev', name, 'up']);
  execFileSync('ip', ['link', 'del', 'dev', name]);
  await waitFor('the read error', () => failure !== undefined);
  assert.equal(failure?.code, 'EBADFD', failure?.message);
  assert.equal(dev.closed, false, 'an error stops reading; the owner closes');
  dev.close();
});

async function udpPair(t: TestContext, family: 4 | 6): Promise<[NativeUdpBatchSocket, NativeUdpBatchSocket]> {
  const host = family === 4 ? '127.0.0.1' : '::1';
  const a = new UdpBatchSocket(family, host, 0);
  const b = new UdpBatchSocket(family, host, 0);
  t.after(() => {
    a.close();
    b.close();
  });
  return [a, b];
}

interface Got {
  data: Buffer | null;
  addr: string;
  port: number;
}

function collect(sock: NativeUdpBatchSocket): Got[] {
  const got: Got[] = [];
  sock.start((buf, lengths, addrs, ports, count) => {
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
  return got;
}

test('UdpBatchSocket: runs of equal-sized datagrams (sent as UDP GSO) arrive as separate datagrams', {
  skip: linuxOnly,
}, async (t) => {
  const [a, b] = await udpPair(t, 4);
  const got = collect(b);
  // 70 full-size datagrams, a shorter one that ends a run, then another run: the sender groups them.
  const sizes = [...Array(70).fill(1452), 300, ...Array(10).fill(1000), 1000, 7];
  const bufs = sizes.map((n, i) => {
    const d = Buffer.alloc(n);
    for (let j = 0; j < n; j++) d[j] = (i * 13 + j) & 0xff;
    return d;
  });
  assert.equal(a.sendMany(bufs, bufs.length, mapped('127.0.0.1'), b.port), bufs.length);
  await waitFor(`${bufs.length} datagrams`, () => got.length === bufs.length);
  for (const [i, g] of got.entries()) assert.deepEqual(g.data, bufs[i], `datagram ${i} (${sizes[i]} bytes)`);
});

test('UdpBatchSocket: 100 datagrams of different sizes with sendMany', { skip: linuxOnly }, async (t) => {
  const [a, b] = await udpPair(t, 4);
  assert.ok(a.port > 0 && b.port > 0 && a.port !== b.port);
  const got = collect(b);
  const bufs = Array.from({ length: 100 }, (_, i) => {
    const d = Buffer.alloc(1 + ((i * 397) % UDP_SLOT_BYTES));
    for (let j = 0; j < d.length; j++) d[j] = (i * 7 + j) & 0xff;
    return d;
  });
  assert.equal(a.sendMany(bufs, bufs.length, mapped('127.0.0.1'), b.port), 100);
  await waitFor('100 datagrams', () => got.length === 100);
  const from = Buffer.from(mapped('127.0.0.1')).toString('hex');
  got.forEach((g, i) => {
    assert.deepEqual(g.data, bufs[i], `datagram ${i}`);
    assert.equal(g.addr, from);
    assert.equal(g.port, a.port);
  });
  // Too long for a slot: reported, not silently cut.
  assert.equal(a.send(Buffer.alloc(UDP_SLOT_BYTES + 1), mapped('127.0.0.1'), b.port), true);
  assert.equal(a.send(Buffer.from('after'), mapped('127.0.0.1'), b.port), true);
  await waitFor('the long datagram', () => got.length === 102);
  assert.equal(got[100].data, null);
  assert.deepEqual(got[101].data, Buffer.from('after'));
  assertSysError(() => a.sendMany(bufs, 1, new Uint8Array(16).fill(1), b.port), 'EAFNOSUPPORT');
  assert.throws(() => a.sendMany(bufs, 101, mapped('127.0.0.1'), b.port), RangeError);
  b.stop();
  b.close();
  b.close();
  assert.equal(b.closed, true);
  assertSysError(() => b.send(bufs[0], mapped('127.0.0.1'), a.port), 'EBADF');
});

test('UdpBatchSocket: IPv6 loopback', { skip: linuxOnly }, async (t) => {
  const [a, b] = await udpPair(t, 6);
  const got = collect(b);
  const loop6 = new Uint8Array(16);
  loop6[15] = 1;
  assert.equal(a.sendMany([Buffer.from('v6-1'), Buffer.from('v6-22')], 2, loop6, b.port), 2);
  await waitFor('two IPv6 datagrams', () => got.length === 2);
  assert.deepEqual(
    got.map((g) => [g.data?.toString(), g.addr, g.port]),
    [
      ['v6-1', Buffer.from(loop6).toString('hex'), a.port],
      ['v6-22', Buffer.from(loop6).toString('hex'), a.port],
    ],
  );
});

test('UdpBatchSocket: errno codes on bad binds', { skip: linuxOnly }, async (t) => {
  const [a] = await udpPair(t, 4);
  assertSysError(() => new UdpBatchSocket(4, '127.0.0.1', a.port), 'EADDRINUSE');
  assertSysError(() => new UdpBatchSocket(4, 'not-an-ip', 0), 'EINVAL');
  const notLocal = '203.0.113.254';
  const local = Object.values(networkInterfaces()).some((l) => l?.some((i) => i.address === notLocal));
  if (!local) assertSysError(() => new UdpBatchSocket(4, notLocal, 0), 'EADDRNOTAVAIL');
  assert.throws(() => new UdpBatchSocket(5 as 4, '127.0.0.1', 0), RangeError);
});

test('an exception thrown by a batch callback reaches process uncaughtException', { skip: linuxOnly }, () => {
  const script = `
    const { UdpBatchSocket } = require(${JSON.stringify(NATIVE_ADDON_PATH)});
    const a = new UdpBatchSocket(4, '127.0.0.1', 0);
    const b = new UdpBatchSocket(4, '127.0.0.1', 0);
    let n = 0;
    b.start(() => { n++; throw new Error('boom ' + n); });
    process.on('uncaughtException', (e) => {
      console.log('caught:', e.message);
      if (n === 2) { a.close(); b.close(); }
    });
    const to = Buffer.from([0,0,0,0,0,0,0,0,0,0,255,255,127,0,0,1]);
    a.send(Buffer.from('x'), to, b.port);
    setTimeout(() => a.send(Buffer.from('y'), to, b.port), 50);
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'caught: boom 1\ncaught: boom 2\n');
});
