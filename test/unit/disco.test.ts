// Disco: the NaCl box (known answers from NaCl/libsodium), message vectors from disco_test.go
// (docs/protocol/datapath.md §2.3), and the envelope codec's receive rules (§2.5).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { x25519 } from '@noble/curves/ed25519.js';
import { BoxError, boxOpen, boxSeal, openWithKey, precompute, sealWithKey } from '../../main/engine/disco/box.ts';
import { DiscoCodec } from '../../main/engine/disco/codec.ts';
import {
  buildEnvelope,
  buildMessage,
  DISCO_MAGIC,
  DiscoError,
  type DiscoMessage,
  discoSender,
  looksLikeDisco,
  parseMessage,
  splitEnvelope,
} from '../../main/engine/disco/message.ts';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/[^0-9a-f]/gi, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// NaCl's crypto_box test (tests/box.c, box2.c in NaCl and libsodium).
const ALICE_SK = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const BOB_SK = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
const BOB_PK = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
const NONCE = hex('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37');
const MESSAGE = hex(`
  be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705`);
const BOX = hex(`
  f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5`);
// crypto_box_beforenm(bobpk, alicesk), the "firstkey" of NaCl's core tests.
const FIRST_KEY = '1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389';
// A point of small order (libsodium tests/box.c): no shared secret.
const SMALL_ORDER = hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');

test('crypto_box known answer: beforenm, seal, open (NaCl box.c / box2.c)', () => {
  assert.equal(MESSAGE.length, 131);
  assert.equal(BOX.length, 16 + 131);
  assert.equal(toHex(x25519.getPublicKey(BOB_SK)), toHex(BOB_PK));
  const alicePk = x25519.getPublicKey(ALICE_SK);
  assert.equal(toHex(precompute(ALICE_SK, BOB_PK)), FIRST_KEY);
  assert.equal(toHex(precompute(BOB_SK, alicePk)), FIRST_KEY, 'both directions share the key');
  assert.equal(toHex(boxSeal(ALICE_SK, BOB_PK, NONCE, MESSAGE)), toHex(BOX));
  assert.equal(toHex(sealWithKey(hex(FIRST_KEY), NONCE, MESSAGE)), toHex(BOX));
  assert.equal(toHex(boxOpen(BOB_SK, alicePk, NONCE, BOX) ?? new Uint8Array()), toHex(MESSAGE));
  assert.equal(toHex(openWithKey(hex(FIRST_KEY), NONCE, BOX) ?? new Uint8Array()), toHex(MESSAGE));
});

test('crypto_box rejects tampering, short boxes and low-order keys', () => {
  const alicePk = x25519.getPublicKey(ALICE_SK);
  for (const i of [0, 15, 16, 146]) {
    const bad = BOX.slice();
    bad[i] ^= 1;
    assert.equal(boxOpen(BOB_SK, alicePk, NONCE, bad), null, `flip at ${i}`);
  }
  assert.equal(openWithKey(hex(FIRST_KEY), NONCE, BOX.subarray(0, 15)), null);
  assert.equal(
    openWithKey(
      hex(FIRST_KEY),
      NONCE.map((b) => b ^ 1),
      BOX,
    ),
    null,
  );
  assert.throws(() => precompute(ALICE_SK, SMALL_ORDER), BoxError);
  assert.throws(() => precompute(ALICE_SK, new Uint8Array(32)), BoxError);
  assert.equal(boxOpen(ALICE_SK, SMALL_ORDER, NONCE, BOX), null);
  assert.throws(() => boxSeal(ALICE_SK, BOB_PK, NONCE.subarray(0, 23), MESSAGE), BoxError);
  const empty = sealWithKey(hex(FIRST_KEY), NONCE, new Uint8Array(0));
  assert.equal(empty.length, 16);
  assert.deepEqual(openWithKey(hex(FIRST_KEY), NONCE, empty), new Uint8Array(0));
});

const TXID = hex('0102030405060708090a0b0c');
const NODE_KEY = hex('a5'.repeat(32));

test('message vectors from disco_test.go (docs/protocol/datapath.md §2.3)', () => {
  const cases: Array<[DiscoMessage, string]> = [
    [{ type: 'ping', txId: TXID, nodeKey: null, padding: 0 }, '0100 0102030405060708090a0b0c'],
    [{ type: 'ping', txId: TXID, nodeKey: NODE_KEY, padding: 0 }, `0100 0102030405060708090a0b0c ${'a5'.repeat(32)}`],
    [
      { type: 'ping', txId: TXID, nodeKey: NODE_KEY, padding: 3 },
      `0100 0102030405060708090a0b0c ${'a5'.repeat(32)} 000000`,
    ],
    [
      { type: 'pong', txId: TXID, src: { ip: '2.3.4.5', port: 1234 } },
      '0200 0102030405060708090a0b0c 00000000000000000000ffff02030405 04d2',
    ],
    [
      { type: 'pong', txId: TXID, src: { ip: 'fed0::12', port: 6666 } },
      '0200 0102030405060708090a0b0c fed00000000000000000000000000012 1a0a',
    ],
    [{ type: 'callMeMaybe', endpoints: [] }, '0300'],
    [
      {
        type: 'callMeMaybe',
        endpoints: [
          { ip: '1.2.3.4', port: 567 },
          { ip: '2001::3456', port: 789 },
        ],
      },
      '0300 00000000000000000000ffff01020304 0237 20010000000000000000000000003456 0315',
    ],
  ];
  for (const [msg, want] of cases) {
    const wire = buildMessage(msg);
    assert.equal(toHex(wire), want.replace(/\s+/g, ''), msg.type);
    assert.deepEqual(parseMessage(wire), msg);
  }
});

test('parsing is lax where tailscaled is lax, strict where it errors', () => {
  // A ping with fewer than 32 bytes after the TxID has no node key; they count as padding.
  const short = parseMessage(Uint8Array.of(1, 0, ...TXID, ...new Uint8Array(20)));
  assert.deepEqual(short, { type: 'ping', txId: TXID, nodeKey: null, padding: 20 });
  // Version bytes are ignored for Ping/Pong; extra bytes after a Pong are ignored.
  assert.equal(parseMessage(Uint8Array.of(1, 7, ...TXID)).type, 'ping');
  const pong = parseMessage(Uint8Array.of(2, 3, ...TXID, ...new Uint8Array(16), 0, 80, 9, 9));
  assert.deepEqual(pong, { type: 'pong', txId: TXID, src: { ip: '::', port: 80 } });
  // CallMeMaybe: a non-zero version or a ragged length is an empty list, not an error.
  const ep = [...new Uint8Array(10), 0xff, 0xff, 1, 2, 3, 4, 0, 80];
  assert.deepEqual(parseMessage(Uint8Array.of(3, 1, ...ep)), { type: 'callMeMaybe', endpoints: [] });
  assert.deepEqual(parseMessage(Uint8Array.of(3, 0, ...ep, 1)), { type: 'callMeMaybe', endpoints: [] });
  assert.deepEqual(parseMessage(Uint8Array.of(3, 0, ...ep)).type, 'callMeMaybe');
  const code = (b: Uint8Array) => {
    try {
      parseMessage(b);
      return 'ok';
    } catch (err) {
      assert.ok(err instanceof DiscoError);
      return err.code;
    }
  };
  assert.equal(code(Uint8Array.of(1)), 'short');
  assert.equal(code(Uint8Array.of(1, 0, ...TXID.subarray(0, 11))), 'short');
  assert.equal(code(Uint8Array.of(2, 0, ...TXID, ...new Uint8Array(17))), 'short');
  assert.equal(code(Uint8Array.of(0x7f, 0)), 'unknown-type');
  assert.equal(code(Uint8Array.of(0, 0)), 'unknown-type');
  for (let t = 4; t <= 9; t++) assert.equal(code(Uint8Array.of(t, 0, ...new Uint8Array(200))), 'unsupported-type');
  assert.throws(() => buildMessage({ type: 'pong', txId: TXID, src: { ip: 'nope', port: 1 } }), DiscoError);
  assert.throws(() => buildMessage({ type: 'ping', txId: TXID.subarray(1), nodeKey: null, padding: 0 }), DiscoError);
});

function pair() {
  const aPriv = new Uint8Array(randomBytes(32));
  const bPriv = new Uint8Array(randomBytes(32));
  const known = new Set<string>();
  const a = new DiscoCodec({ privateKey: aPriv, isKnownDiscoKey: (k) => known.has(toHex(k)) });
  const b = new DiscoCodec({ privateKey: bPriv, isKnownDiscoKey: (k) => known.has(toHex(k)) });
  known.add(toHex(a.publicKey));
  known.add(toHex(b.publicKey));
  return { a, b, known, aPriv };
}

test('envelope layout and sizes: magic, sender key, nonce, tag ‖ ciphertext', () => {
  const { a, b, aPriv } = pair();
  const ping: DiscoMessage = { type: 'ping', txId: TXID, nodeKey: NODE_KEY, padding: 0 };
  const nonce = new Uint8Array(randomBytes(24));
  const pkt = a.seal(b.publicKey, ping, nonce);
  assert.equal(pkt.length, 124);
  assert.deepEqual(pkt.subarray(0, 6), DISCO_MAGIC);
  assert.equal(toHex(pkt.subarray(0, 6)), '5453f09f92ac');
  assert.deepEqual(discoSender(pkt), a.publicKey);
  assert.deepEqual(pkt.subarray(38, 62), nonce);
  // The box is exactly NaCl's crypto_box from our key to theirs.
  const inner = buildMessage(ping);
  assert.deepEqual(pkt.subarray(62), boxSeal(aPriv, b.publicKey, nonce, inner));
  const got = b.open(pkt);
  assert.deepEqual(got?.message, ping);
  assert.deepEqual(got?.sender, a.publicKey);
  assert.equal(b.seal(a.publicKey, { type: 'pong', txId: TXID, src: { ip: '127.3.3.40', port: 1 } }).length, 110);
  assert.equal(b.seal(a.publicKey, { type: 'callMeMaybe', endpoints: [{ ip: '::1', port: 2 }] }).length, 80 + 18);
  const parts = splitEnvelope(pkt);
  assert.deepEqual(buildEnvelope(parts.sender, parts.nonce, parts.box), pkt);
});

test('receive rules: unknown senders dropped before crypto; bad boxes, short and odd packets counted', () => {
  const { a, b, known, aPriv } = pair();
  const ping: DiscoMessage = { type: 'ping', txId: TXID, nodeKey: null, padding: 0 };
  const pkt = a.seal(b.publicKey, ping);
  known.delete(toHex(a.publicKey));
  assert.equal(b.open(pkt), null);
  assert.equal(b.counters.unknownKey, 1);
  assert.equal(b.counters.badBox, 0, 'no crypto was attempted');
  known.add(toHex(a.publicKey));
  const tampered = pkt.slice();
  tampered[pkt.length - 1] ^= 0x80;
  assert.equal(b.open(tampered), null);
  assert.equal(b.counters.badBox, 1);
  assert.equal(b.open(pkt.subarray(0, 77)), null);
  assert.equal(b.counters.short, 1);
  assert.equal(looksLikeDisco(pkt.subarray(0, 38)), true);
  assert.equal(looksLikeDisco(pkt.subarray(0, 37)), false);
  assert.equal(looksLikeDisco(Uint8Array.of(1, 0, 0, 0, ...new Uint8Array(144))), false); // WireGuard initiation
  assert.equal(b.open(new Uint8Array(148)), null);
  assert.equal(b.counters.notDisco, 1);
  const lowOrder = buildEnvelope(SMALL_ORDER, new Uint8Array(24), new Uint8Array(40));
  known.add(toHex(SMALL_ORDER));
  assert.equal(b.open(lowOrder), null);
  assert.equal(b.counters.badKey, 1);
  // A newer message type from a known peer is dropped silently and counted.
  const key = precompute(aPriv, b.publicKey);
  const nonce = new Uint8Array(24);
  const future = buildEnvelope(a.publicKey, nonce, sealWithKey(key, nonce, Uint8Array.of(0x42, 0)));
  assert.equal(b.open(future), null);
  assert.equal(b.counters.unknownType, 1);
  const shortPong = buildEnvelope(a.publicKey, nonce, sealWithKey(key, nonce, Uint8Array.of(2, 0, 1)));
  assert.equal(b.open(shortPong), null);
  assert.equal(b.counters.malformed, 1);
  assert.deepEqual(b.open(pkt)?.message, ping);
  assert.equal(b.counters.accepted, 1);
  // An old disco key of ours: the box does not open.
  const stale = new DiscoCodec({ privateKey: randomBytes(32), isKnownDiscoKey: () => true });
  assert.equal(stale.open(pkt), null);
  assert.equal(stale.counters.badBox, 1);
});

test('random datagrams with the magic never throw', () => {
  const { b, known } = pair();
  const sender = randomBytes(32);
  known.add(toHex(sender));
  for (let i = 0; i < 3000; i++) {
    const body = randomBytes(i % 200);
    const pkt = new Uint8Array(38 + body.length);
    pkt.set(DISCO_MAGIC);
    pkt.set(sender, 6);
    pkt.set(body, 38);
    assert.equal(b.open(pkt), null);
  }
  const c = b.counters;
  assert.equal(c.short + c.badBox + c.badKey, 3000);
});
