// The cacophony vector for Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s run through our WireGuard handshake
// with the vector's prologue and PSK: both handshake messages, the final hash, and transport in both directions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dh, publicKeyOf } from '../../main/engine/wg/crypto.ts';
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
} from '../../main/engine/wg/handshake.ts';
import { Keypair } from '../../main/engine/wg/keypair.ts';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const V = {
  prologue: '4a6f686e2047616c74',
  psk: '54686973206973206d7920417573747269616e20706572737065637469766521',
  initStatic: 'e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1',
  initEphemeral: '893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a',
  respStatic: '4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893',
  respEphemeral: 'bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b',
  handshakeHash: 'f5191b875290abcd41347ac3622d9679688a7e980229cb937ef748336cfde0e5',
  messages: [
    [
      '4c756477696720766f6e204d69736573',
      'ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8e2ad57527207feb56253c9c94a9e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000980c84831215f2441eba616548e832985464cf17e51ee93109008399a21f7e13f',
    ],
    [
      '4d757272617920526f746862617264',
      '95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b8f007572dab0322217755c0632f365717edbf34d33e87a',
    ],
    ['462e20412e20486179656b', '8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7'],
    ['4361726c204d656e676572', '07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef'],
  ],
};

test('Noise IKpsk2 cacophony vector reproduces bit for bit', () => {
  const key = (priv: string) => ({ privateKey: hex(priv), publicKey: publicKeyOf(hex(priv)) });
  const initiator = {
    staticPrivate: hex(V.initStatic),
    staticPublic: publicKeyOf(hex(V.initStatic)),
    prologue: hex(V.prologue),
  };
  const responder = {
    staticPrivate: hex(V.respStatic),
    staticPublic: publicKeyOf(hex(V.respStatic)),
    prologue: hex(V.prologue),
  };
  const psk = hex(V.psk);

  const p1 = hex(V.messages[0][0]);
  const { message: m1, state } = createInitiation(initiator, {
    remoteStatic: responder.staticPublic,
    localIndex: 7,
    payload: p1,
    ephemeral: key(V.initEphemeral),
  });
  // WireGuard bytes 8..(end-32) are the Noise message body: ephemeral ‖ enc(static) ‖ enc(payload).
  assert.equal(toHex(m1.subarray(8, m1.length - 32)), V.messages[0][1]);

  const consumed = consumeInitiation(
    responder,
    m1,
    (pub) => (toHex(pub) === toHex(initiator.staticPublic) ? dh(responder.staticPrivate, pub) : undefined),
    p1.length,
  );
  assert.deepEqual(new Uint8Array(consumed.timestamp), p1, 'responder decrypts the payload');
  assert.deepEqual(consumed.remoteStatic, initiator.staticPublic);

  const p2 = hex(V.messages[1][0]);
  const { message: m2, keys: rKeys } = createResponse(consumed, {
    localIndex: 9,
    psk,
    payload: p2,
    ephemeral: key(V.respEphemeral),
  });
  assert.equal(toHex(m2.subarray(12, m2.length - 32)), V.messages[1][1]);

  const iKeys = consumeResponse(initiator, state, m2, psk, p2.length);
  assert.deepEqual(new Uint8Array(iKeys.payload), p2);
  assert.equal(toHex(iKeys.hash), V.handshakeHash);
  assert.equal(toHex(rKeys.hash), V.handshakeHash);

  // Transport: message 3 initiator→responder and message 4 back, each with counter 0.
  const iSession = new Keypair(iKeys.sendKey, iKeys.receiveKey, true, 7, 9, 0);
  const rSession = new Keypair(rKeys.sendKey, rKeys.receiveKey, false, 9, 7, 0);
  for (const [from, to, [payload, cipher]] of [
    [iSession, rSession, V.messages[2]],
    [rSession, iSession, V.messages[3]],
  ] as const) {
    // Noise pads nothing: seal with an MTU equal to the payload length so WireGuard padding is off.
    const msg = from.seal(hex(payload), hex(payload).length);
    assert.equal(toHex(msg.subarray(16)), cipher);
    assert.deepEqual(new Uint8Array(to.open(msg, 0) ?? []), hex(payload));
  }
});
