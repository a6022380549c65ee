// DERP framing, the NaCl box, the handshake bytes, and the client against fake (and hostile) servers on loopback.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { boxBeforenm, boxOpen, boxSeal, NaclBoxError, openFrom, sealTo } from '../../main/engine/crypto/naclbox.ts';
import { DerpClient, type DerpConnectOptions, DerpError } from '../../main/engine/derp/client.ts';
import * as F from '../../main/engine/derp/frames.ts';
import { clientInfoFrame, UpgradeReader } from '../../main/engine/derp/handshake.ts';
import { generateKeyPair } from '../../main/engine/wg/crypto.ts';
import { type FakeConn, serverKeys, withServer } from './fake-derp.ts';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const cat = (...p: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(p));
const key = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);

function drain(p: F.FrameParser): F.DerpFrame[] {
  const out: F.DerpFrame[] = [];
  for (let f = p.next(); f; f = p.next()) out.push(f);
  return out;
}

describe('DERP frames', () => {
  const stream = cat(
    F.buildServerKey(key(7)),
    F.buildRecvPacket(key(1), Uint8Array.of(9, 8, 7)),
    F.buildFrame(0x7f, new Uint8Array(100).fill(0xee)), // unknown: skipped
    F.buildKeepAlive(),
    F.buildFrame(F.FrameType.PeerPresent, new Uint8Array(51)), // mesh-only: skipped
    F.buildPeerGone(key(2), F.PeerGoneReason.NotHere),
    F.buildPing(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)),
    F.buildFrame(F.FrameType.Health, new TextEncoder().encode('disk on fire')),
    F.buildFrame(F.FrameType.Restarting, hex('000003e8 00007530')),
    F.buildFrame(F.FrameType.ServerInfo, new Uint8Array(40)),
  );
  const want = [
    { type: 'serverKey', key: key(7) },
    { type: 'recvPacket', src: key(1), packet: Uint8Array.of(9, 8, 7) },
    { type: 'keepAlive' },
    { type: 'peerGone', peer: key(2), reason: 1 },
    { type: 'ping', data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
    { type: 'health', problem: 'disk on fire' },
    { type: 'restarting', reconnectInMs: 1000, tryForMs: 30000 },
    { type: 'serverInfo', sealed: new Uint8Array(40) },
  ];
  const norm = (fs: F.DerpFrame[]) =>
    JSON.parse(JSON.stringify(fs, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v)));

  test('several frames in one chunk; unknown and mesh-only types skipped', () => {
    const p = new F.FrameParser();
    p.push(stream);
    assert.deepEqual(norm(drain(p)), norm(want as F.DerpFrame[]));
    assert.equal(p.skippedFrames, 2);
    assert.equal(p.pending, 0);
  });

  test('the same stream split at every byte boundary, and fed one byte at a time', () => {
    for (let i = 0; i <= stream.length; i++) {
      const p = new F.FrameParser();
      p.push(stream.slice(0, i));
      const got = drain(p);
      p.push(stream.slice(i));
      got.push(...drain(p));
      assert.deepEqual(norm(got), norm(want as F.DerpFrame[]), `split at ${i}`);
    }
    const p = new F.FrameParser();
    const got: F.DerpFrame[] = [];
    for (const b of stream) {
      p.push(Uint8Array.of(b));
      got.push(...drain(p));
    }
    assert.deepEqual(norm(got), norm(want as F.DerpFrame[]));
  });

  test('oversized frames fail at the header, and the parser stays failed', () => {
    const p = new F.FrameParser();
    p.push(hex('05 00100001')); // RecvPacket of 1 MiB + 1
    assert.throws(
      () => p.next(),
      (e) => e instanceof F.DerpFrameError && e.reason === 'oversized',
    );
    assert.throws(() => p.next(), F.DerpFrameError);
    assert.throws(() => p.push(Uint8Array.of(1)), F.DerpFrameError);
    const k = new F.FrameParser();
    k.push(hex('01 00000401')); // ServerKey over 1 KiB
    assert.throws(
      () => k.next(),
      (e) => e instanceof F.DerpFrameError && e.reason === 'oversized',
    );
  });

  test('an unknown 1 MiB frame is skipped without being buffered', () => {
    const p = new F.FrameParser();
    p.push(hex('7e 00100000'));
    for (let i = 0; i < 16; i++) {
      p.push(new Uint8Array(65536));
      assert.equal(p.next(), null);
      assert.ok(p.pending < 65536);
    }
    p.push(F.buildKeepAlive());
    assert.deepEqual(p.next(), { type: 'keepAlive' });
  });

  test('malformed known frames throw DerpFrameError', () => {
    for (const bad of [
      F.buildFrame(F.FrameType.ServerKey, new Uint8Array(40)), // no magic
      F.buildFrame(F.FrameType.RecvPacket, new Uint8Array(31)),
      F.buildFrame(F.FrameType.PeerGone, new Uint8Array(5)),
      F.buildFrame(F.FrameType.Ping, new Uint8Array(7)),
    ]) {
      const p = new F.FrameParser();
      p.push(bad);
      assert.throws(
        () => p.next(),
        (e) => e instanceof F.DerpFrameError && e.reason === 'malformed',
      );
    }
  });

  test('random bytes come out as frames or DerpFrameError, never anything else', () => {
    for (let i = 0; i < 3000; i++) {
      const buf = randomBytes(5 + (i % 300));
      if (i % 2) buf.fill(0, 1, 4); // short lengths, so that frames complete
      const p = new F.FrameParser();
      p.push(buf);
      try {
        drain(p);
      } catch (e) {
        assert.ok(e instanceof F.DerpFrameError, String(e));
      }
    }
  });

  test('builders: exact bytes (docs/protocol/datapath.md §1.9)', () => {
    assert.equal(toHex(F.buildKeepAlive()), '0600000000');
    assert.equal(toHex(F.buildNotePreferred(true)), '070000000101');
    assert.equal(toHex(F.buildNotePreferred(false)), '070000000100');
    assert.equal(toHex(F.buildPing(hex('0102030405060708'))), '12000000080102030405060708');
    assert.equal(toHex(F.buildPong(hex('0102030405060708'))), '13000000080102030405060708');
    assert.equal(toHex(F.buildSendPacket(key(0xab), hex('cafe'))), `0400000022${'ab'.repeat(32)}cafe`);
    assert.equal(toHex(F.buildServerKey(key(1))).slice(0, 26), '010000002844455250f09f9491');
    assert.throws(() => F.buildSendPacket(key(1), new Uint8Array(65537)), F.DerpFrameError);
    assert.equal(F.buildSendPacket(key(1), new Uint8Array(65536)).length, 5 + 32 + 65536);
    assert.throws(() => F.buildPong(new Uint8Array(7)), F.DerpFrameError);
  });

  test('ClientInfo: key ‖ nonce ‖ box of {"version":2,"CanAckPings":true}, opened by the server key', () => {
    const client = generateKeyPair();
    const server = generateKeyPair();
    const nonce = new Uint8Array(24).fill(0x42);
    const frame = clientInfoFrame(client.publicKey, client.privateKey, server.publicKey, {}, nonce);
    const json = '{"version":2,"CanAckPings":true}';
    assert.equal(toHex(frame.subarray(0, 5)), `02${(32 + 24 + 16 + json.length).toString(16).padStart(8, '0')}`);
    assert.deepEqual(frame.subarray(5, 37), client.publicKey);
    assert.deepEqual(frame.subarray(37, 61), nonce);
    const box = boxSeal(new TextEncoder().encode(json), nonce, server.publicKey, client.privateKey);
    assert.deepEqual(frame.subarray(61), box);
    const opened = openFrom(frame.subarray(37), client.publicKey, server.privateKey);
    assert.equal(new TextDecoder().decode(opened), json);
  });

  test('UpgradeReader: 101 split across reads keeps the bytes after the head; other answers are DerpErrors', () => {
    const r = new UpgradeReader();
    const head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nDerp-Public-Key: ${'AB'.repeat(32)}\r\n\r\n`;
    const all = cat(Buffer.from(head), F.buildKeepAlive());
    assert.equal(r.push(all.subarray(0, 20)), null);
    assert.equal(toHex(r.push(all.subarray(20)) ?? new Uint8Array(0)), '0600000000');
    assert.equal(r.serverKeyHex, 'ab'.repeat(32));
    const hs = new UpgradeReader(); // Headscale's form of the header
    assert.ok(hs.push(Buffer.from(`HTTP/1.1 101 x\r\nDerp-Public-Key: nodekey:${'cd'.repeat(32)}\r\n\r\n`)));
    assert.equal(hs.serverKeyHex, 'cd'.repeat(32));
    const no = Buffer.from('HTTP/1.1 426 Upgrade Required\r\n\r\nDERP requires connection upgrade');
    assert.throws(
      () => new UpgradeReader().push(no),
      (e) => e instanceof DerpError && /426.*requires/.test(e.message),
    );
    assert.throws(() => new UpgradeReader().push(new Uint8Array(17 << 10).fill(65)), DerpError);
  });
});

describe('NaCl box', () => {
  // NaCl distribution tests/box.c, box2.c (and firstkey.c for the precomputed key).
  const alicesk = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicepk = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  const bobsk = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobpk = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const nonce = hex('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37');
  const m = hex(`be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c6129
    6cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd
    4924ca1c60902e52f0a089bc76897040e082f937763848645e0705`);
  const c = hex(`f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a
    c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae90224368517acfea
    bd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5`);

  test('known answers: beforenm, seal (alice → bob) and open (bob)', () => {
    assert.equal(m.length, 131);
    assert.equal(
      toHex(boxBeforenm(bobpk, alicesk)),
      '1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389',
    );
    assert.equal(toHex(boxSeal(m, nonce, bobpk, alicesk)), toHex(c));
    assert.equal(toHex(boxOpen(c, nonce, alicepk, bobsk)), toHex(m));
  });

  test('round trip in the Tailscale form; tampering, wrong keys and low-order keys fail', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const msg = randomBytes(300);
    const sealed = sealTo(msg, b.publicKey, a.privateKey);
    assert.equal(sealed.length, 24 + 16 + 300);
    assert.deepEqual(Buffer.from(openFrom(sealed, a.publicKey, b.privateKey)), msg);
    for (const i of [0, 23, 24, 39, 40, sealed.length - 1]) {
      const bad = Uint8Array.from(sealed);
      bad[i] ^= 1;
      assert.throws(() => openFrom(bad, a.publicKey, b.privateKey), NaclBoxError, `flip at ${i}`);
    }
    assert.throws(() => openFrom(sealed, generateKeyPair().publicKey, b.privateKey), NaclBoxError);
    assert.throws(() => openFrom(sealed.subarray(0, 39), a.publicKey, b.privateKey), NaclBoxError);
    assert.throws(() => sealTo(msg, new Uint8Array(32), a.privateKey), NaclBoxError);
  });
});

// ---- the client against fake servers ----

const opts = (port: number, extra: Partial<DerpConnectOptions> = {}): DerpConnectOptions => ({
  url: `http://127.0.0.1:${port}/derp`,
  privateKey: generateKeyPair().privateKey,
  timeoutMs: 2_000,
  ...extra,
});
const kindOf = (kind: string, re: RegExp) => (e: unknown) =>
  e instanceof DerpError && e.kind === kind && re.test(e.message);

describe('DerpClient against fake servers', () => {
  test('handshake, packets both ways, server ping answered, PeerGone, Health', async () => {
    let conn: FakeConn | undefined;
    let hello: { client: Uint8Array; info: Record<string, unknown> } | undefined;
    await withServer(
      async (c) => {
        conn = c;
        hello = await c.accept();
        // a RecvPacket in the same write as nothing else: delivered after connect() returns
        c.sock.write(cat(F.buildRecvPacket(key(5), hex('0102')), F.buildPing(hex('1122334455667788'))));
      },
      async (port) => {
        const client = await DerpClient.connect(opts(port));
        const got: string[] = [];
        client.onPacket((src, p) => got.push(`${toHex(src).slice(0, 4)}:${toHex(p)}`));
        client.onPeerGone((peer, reason) => got.push(`gone:${toHex(peer).slice(0, 4)}:${reason}`));
        client.onHealth((h) => got.push(`health:${h}`));
        assert.deepEqual(hello?.info, { version: 2, CanAckPings: true });
        assert.deepEqual(hello?.client, client.publicKey);
        assert.deepEqual(await conn?.frame(), { type: 'pong', data: hex('1122334455667788') });
        assert.ok(client.send(key(9), hex('abcdef')));
        const sp = (await conn?.frame()) as Extract<F.DerpFrame, { type: 'sendPacket' }>;
        assert.deepEqual([sp.type, toHex(sp.dst), toHex(sp.packet)], ['sendPacket', toHex(key(9)), 'abcdef']);
        conn?.sock.write(cat(F.buildPeerGone(key(6), 0), F.buildFrame(F.FrameType.Health, Buffer.from('meh'))));
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(got, ['0505:0102', 'gone:0606:0', 'health:meh']);
        client.close();
        assert.ok(client.closed);
      },
    );
  });

  test('watchdog: silence after the handshake ends the connection with a timeout', async () => {
    await withServer(
      (c) => c.accept().then(() => {}),
      async (port) => {
        const client = await DerpClient.connect(opts(port, { readTimeoutMs: 150 }));
        const err = await new Promise<DerpError>((r) => client.onClose(r));
        assert.ok(kindOf('timeout', /nothing from the DERP server/)(err));
      },
    );
  });

  test('hostile servers: wrong first frame, oversized frame, bad ServerInfo, silence, refusal', async () => {
    const garbage = (c: FakeConn) => void c.sock.write(`HTTP/1.1 101 OK\r\n\r\n${'x'.repeat(64)}`);
    await withServer(garbage, async (port) => {
      await assert.rejects(DerpClient.connect(opts(port)), kindOf('protocol', /bad frame|expected ServerKey/));
    });
    const liar = (c: FakeConn) => {
      c.sock.write(`HTTP/1.1 101 Switching Protocols\r\nDerp-Public-Key: ${'00'.repeat(32)}\r\n\r\n`);
      c.sock.write(F.buildServerKey(serverKeys.publicKey));
    };
    await withServer(liar, async (port) => {
      await assert.rejects(DerpClient.connect(opts(port)), kindOf('protocol', /disagrees with the Derp-Public-Key/));
    });
    const oversized = async (c: FakeConn) => {
      await c.accept();
      c.sock.write(hex('05 7fffffff'));
    };
    await withServer(oversized, async (port) => {
      const client = await DerpClient.connect(opts(port));
      const err = await new Promise<DerpError>((r) => client.onClose(r));
      assert.ok(kindOf('protocol', /exceeds/)(err));
    });
    const badInfo = async (c: FakeConn) => {
      c.sock.write(`HTTP/1.1 101 Switching Protocols\r\n\r\n`);
      c.sock.write(cat(F.buildServerKey(serverKeys.publicKey), F.buildServerInfo(new Uint8Array(60))));
    };
    await withServer(badInfo, async (port) => {
      await assert.rejects(DerpClient.connect(opts(port)), kindOf('protocol', /ServerInfo does not open/));
    });
    await withServer(
      () => {},
      async (port) => {
        const t0 = Date.now();
        await assert.rejects(DerpClient.connect(opts(port, { timeoutMs: 300 })), kindOf('timeout', /101/));
        assert.ok(Date.now() - t0 < 2_000);
      },
    );
    let freePort = 0;
    await withServer(
      () => {},
      async (port) => void (freePort = port),
    );
    await assert.rejects(DerpClient.connect(opts(freePort)), kindOf('unreachable', /ECONNREFUSED/));
  });

  test('random frames after the handshake end in a DerpError or nothing, never an exception', async () => {
    for (let round = 0; round < 10; round++) {
      const junk: Uint8Array[] = [];
      for (let i = 0; i < 50; i++) {
        const type = [1, 3, 5, 6, 8, 0x12, 0x13, 0x14, 0x15, 0x42][i % 10];
        junk.push(F.buildFrame(type, randomBytes((i * 7 + round) % 48)));
      }
      await withServer(
        (c) => c.accept().then(() => void c.sock.write(cat(...junk))),
        async (port) => {
          const client = await DerpClient.connect(opts(port));
          client.onPacket(() => {});
          await new Promise((r) => setTimeout(r, 30));
          assert.ok(!client.closed || client.closeError instanceof DerpError);
          client.close();
        },
      );
    }
  });

  test('TLS: sha256-raw pin, InsecureForTests, and CA verification failure', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'derp-tls-'));
    try {
      const [k, c] = [path.join(dir, 'k.pem'), path.join(dir, 'c.pem')];
      try {
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-keyout',
            k,
            '-out',
            c,
            '-days',
            '1',
            '-subj',
            '/CN=derp.test',
            '-addext',
            'subjectAltName=DNS:derp.test',
          ],
          { stdio: 'ignore' },
        );
      } catch {
        return void t.skip('openssl not available');
      }
      const tls = { key: readFileSync(k), cert: readFileSync(c) };
      const pin = createHash('sha256').update(new X509Certificate(tls.cert).raw).digest('hex');
      await withServer(
        (conn) => conn.accept().then(() => {}),
        async (port) => {
          const node = { HostName: 'derp.test', IPv4: '127.0.0.1', IPv6: 'none', DERPPort: port };
          const o = (n: object): DerpConnectOptions => ({ ...opts(port), url: undefined, node: { ...node, ...n } });
          const pinned = await DerpClient.connect(o({ CertName: `sha256-raw:${pin}` }));
          pinned.close();
          const insecure = await DerpClient.connect(o({ InsecureForTests: true }));
          insecure.close();
          const wrong = `sha256-raw:${'0'.repeat(64)}`;
          await assert.rejects(
            DerpClient.connect(o({ CertName: wrong })),
            kindOf('protocol', /does not match the pin/),
          );
          await assert.rejects(DerpClient.connect(o({})), kindOf('protocol', /TLS/));
        },
        tls,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
