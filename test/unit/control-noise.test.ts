// ts2021 Noise: the client handshake against a responder written here from the Noise IK rules, and the
// record layer over a real loopback TCP connection — records split across reads, EarlyNoise split across
// records, big-endian nonces past the first record, oversize and tampered records.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import {
  MAX_PLAINTEXT,
  NoiseError,
  PROTOCOL_NAME,
  prologue,
  recordNonce,
  startClientHandshake,
} from '../../main/engine/control/noise.ts';
import { EARLY_MAGIC, NoiseConn } from '../../main/engine/control/noise-conn.ts';
import { aeadOpen, aeadSeal, dh, generateKeyPair, hash, kdf } from '../../main/engine/wg/crypto.ts';

const enc = new TextEncoder();

/** The server side of Noise IK (<- s; -> e, es, s, ss; <- e, ee, se), for the test only. */
function respond(serverPrivate: Uint8Array, serverPublic: Uint8Array, init: Uint8Array) {
  const version = (init[0] << 8) | init[1];
  let h = hash(enc.encode(PROTOCOL_NAME));
  let ck = h;
  h = hash(h, prologue(version));
  h = hash(h, serverPublic);
  const ce = init.subarray(5, 37);
  h = hash(h, ce);
  let k: Uint8Array;
  [ck, k] = kdf(2, ck, dh(serverPrivate, ce));
  const machineCipher = init.subarray(37, 85);
  const machinePublic = aeadOpen(k, 0n, machineCipher, h);
  h = hash(h, machineCipher);
  [ck, k] = kdf(2, ck, dh(serverPrivate, machinePublic));
  aeadOpen(k, 0n, init.subarray(85, 101), h);
  h = hash(h, init.subarray(85, 101));
  const e = generateKeyPair();
  h = hash(h, e.publicKey);
  [ck] = kdf(2, ck, dh(e.privateKey, ce));
  [ck, k] = kdf(2, ck, dh(e.privateKey, machinePublic));
  const tag = aeadSeal(k, 0n, new Uint8Array(0), h);
  const response = new Uint8Array(51);
  response[0] = 2;
  response[2] = 48;
  response.set(e.publicKey, 3);
  response.set(tag, 35);
  const [clientSend, clientRecv] = kdf(2, ck, new Uint8Array(0));
  return { response, machinePublic, serverSend: clientRecv, serverRecv: clientSend, version };
}

function sealRecord(key: Uint8Array, counter: bigint, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, recordNonce(counter), { authTagLength: 16 });
  const body = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  const rec = Buffer.alloc(3 + body.length);
  rec[0] = 4;
  rec.writeUInt16BE(body.length, 1);
  body.copy(rec, 3);
  return rec;
}

function openRecords(key: Uint8Array, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let counter = 0n;
  for (let off = 0; off < data.length; ) {
    assert.equal(data[off], 4);
    const len = data.readUInt16BE(off + 1);
    assert.ok(len + 3 <= 4096, 'records stay within 4096 bytes');
    const rec = data.subarray(off + 3, off + 3 + len);
    const d = createDecipheriv('chacha20-poly1305', key, recordNonce(counter++), { authTagLength: 16 });
    d.setAuthTag(rec.subarray(len - 16));
    out.push(Buffer.concat([d.update(rec.subarray(0, len - 16)), d.final()]));
    off += 3 + len;
  }
  return out;
}

async function socketPair(): Promise<{ client: Socket; server: Socket; srv: Server }> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  const serverSide = new Promise<Socket>((r) => srv.once('connection', r));
  const client = createConnection(port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  return { client, server: await serverSide, srv };
}

function handshake() {
  const server = generateKeyPair();
  const machine = generateKeyPair();
  const hs = startClientHandshake({ version: 130, machinePrivate: machine.privateKey, serverPublic: server.publicKey });
  assert.equal(hs.initiation.length, 101);
  assert.deepEqual([...hs.initiation.subarray(0, 5)], [0, 130, 1, 0, 96], 'version BE, type 1, length 96');
  const r = respond(server.privateKey, server.publicKey, hs.initiation);
  assert.deepEqual(new Uint8Array(r.machinePublic), machine.publicKey, 'the server learns our machine key');
  assert.equal(r.version, 130);
  const keys = hs.finish(r.response);
  assert.deepEqual(keys.sendKey, r.serverRecv);
  assert.deepEqual(keys.receiveKey, r.serverSend);
  return { keys, r };
}

test('client handshake interoperates with a Noise IK responder; a wrong server key is refused', () => {
  handshake();
  const server = generateKeyPair();
  const impostor = generateKeyPair();
  const hs = startClientHandshake({
    version: 130,
    machinePrivate: generateKeyPair().privateKey,
    serverPublic: server.publicKey,
  });
  assert.throws(() => respond(impostor.privateKey, impostor.publicKey, hs.initiation), 'impostor cannot read it');
  const err = new Uint8Array([3, 0, 4, ...enc.encode('nope')]);
  assert.throws(() => hs.finish(err), /refused the handshake: nope/);
  const r = respond(server.privateKey, server.publicKey, hs.initiation);
  const forged = new Uint8Array(r.response);
  forged[40] ^= 1;
  assert.throws(() => hs.finish(forged), NoiseError);
});

test('records split across TCP reads and EarlyNoise split across records come out as the HTTP/2 bytes', async () => {
  const { keys, r } = handshake();
  const { client, server, srv } = await socketPair();
  try {
    const conn = new NoiseConn(client, keys.sendKey, keys.receiveKey, Buffer.alloc(0));
    const early = Buffer.from(JSON.stringify({ nodeKeyChallenge: `chalpub:${'ab'.repeat(32)}` }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(early.length);
    const h2 = randomBytes(20_000); // stands in for the server's HTTP/2 bytes; needs several records
    const pieces = [Buffer.from(EARLY_MAGIC), len, early];
    for (let off = 0; off < h2.length; off += 3000) pieces.push(h2.subarray(off, off + 3000));
    const wire = Buffer.concat(pieces.map((p, i) => sealRecord(r.serverSend, BigInt(i), p)));
    const got: Buffer[] = [];
    conn.on('data', (d: Buffer) => got.push(d));
    // Dribble the wire bytes in odd-sized TCP writes so records straddle reads.
    for (let off = 0; off < wire.length; off += 777) {
      server.write(wire.subarray(off, off + 777));
      await new Promise((res) => setTimeout(res, 1));
    }
    for (let i = 0; i < 200 && Buffer.concat(got).length < h2.length; i++)
      await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual(Buffer.concat(got), h2);
    assert.equal(conn.earlyNoise?.nodeKeyChallenge, `chalpub:${'ab'.repeat(32)}`);

    // Client → server: a write larger than one record is split, each record ≤ 4096, counters big-endian.
    const upload = randomBytes(MAX_PLAINTEXT * 2 + 100);
    const received: Buffer[] = [];
    server.on('data', (d: Buffer) => received.push(d));
    conn.write(upload);
    for (let i = 0; i < 200 && Buffer.concat(received).length < upload.length + 3 * 19; i++) {
      await new Promise((res) => setTimeout(res, 10));
    }
    const records = openRecords(r.serverRecv, Buffer.concat(received));
    assert.equal(records.length, 3);
    assert.deepEqual(Buffer.concat(records), upload);
    conn.destroy();
  } finally {
    server.destroy();
    srv.close();
  }
});

test('no EarlyNoise: the first bytes are HTTP/2 and pass through untouched', async () => {
  const { keys, r } = handshake();
  const { client, server, srv } = await socketPair();
  try {
    const conn = new NoiseConn(client, keys.sendKey, keys.receiveKey, Buffer.alloc(0));
    const settings = Buffer.from('000000040000000000', 'hex'); // an HTTP/2 SETTINGS frame header
    const got: Buffer[] = [];
    conn.on('data', (d: Buffer) => got.push(d));
    server.write(sealRecord(r.serverSend, 0n, settings.subarray(0, 4)));
    server.write(sealRecord(r.serverSend, 1n, settings.subarray(4)));
    for (let i = 0; i < 100 && Buffer.concat(got).length < settings.length; i++)
      await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual(Buffer.concat(got), settings);
    conn.destroy();
  } finally {
    server.destroy();
    srv.close();
  }
});

test('an oversize, mistyped or tampered record ends the connection with a NoiseError', async () => {
  const { keys, r } = handshake();
  const bad: Array<[string, Buffer]> = [
    ['oversize', Buffer.from([4, 0x10, 0x00])],
    ['wrong type', Buffer.from([3, 0, 20, ...randomBytes(20)])],
    [
      'tampered',
      (() => {
        const rec = sealRecord(r.serverSend, 0n, Buffer.from('hello'));
        rec[5] ^= 1;
        return rec;
      })(),
    ],
  ];
  for (const [what, bytes] of bad) {
    const { client, server, srv } = await socketPair();
    try {
      const conn = new NoiseConn(client, keys.sendKey, keys.receiveKey, Buffer.alloc(0));
      const failed = new Promise<Error>((res) => conn.once('error', res));
      server.write(bytes);
      const e = await failed;
      assert.ok(e instanceof NoiseError, `${what}: ${e.message}`);
    } finally {
      server.destroy();
      srv.close();
    }
  }
});
