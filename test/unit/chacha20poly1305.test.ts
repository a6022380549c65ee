// The TypeScript ChaCha20-Poly1305 against RFC 8439's vectors, node:crypto (OpenSSL) and @noble/ciphers, and the
// in-place contract the transport relies on: a forged or damaged message leaves the buffer as it was.
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ChaCha20Poly1305, TAG_BYTES } from '../../main/engine/wg/chacha20poly1305.ts';
import { Keypair } from '../../main/engine/wg/keypair.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const words = (n: Uint8Array): [number, number, number] => {
  const b = Buffer.from(n);
  return [b.readInt32LE(0), b.readInt32LE(4), b.readInt32LE(8)];
};

function sealCopy(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array, aad: Uint8Array, offset = 0): Buffer {
  const buf = Buffer.alloc(offset + plain.length + TAG_BYTES);
  buf.set(plain, offset);
  new ChaCha20Poly1305(key).seal(buf, offset, plain.length, ...words(nonce), aad);
  return buf.subarray(offset);
}

function openssl(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

test('RFC 8439 §2.8.2: the AEAD example seals to the published ciphertext and tag', () => {
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('070000004041424344454647');
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const plain = Buffer.from(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const sealed = sealCopy(key, nonce, plain, aad);
  assert.equal(
    sealed.subarray(0, 16).toString('hex'),
    'd31a8d34648e60db7b86afbc53ef7ec2',
    'first ciphertext block (keystream from counter 1)',
  );
  assert.equal(sealed.subarray(plain.length - 2, plain.length).toString('hex'), '6116', 'last ciphertext bytes');
  assert.equal(sealed.subarray(plain.length).toString('hex'), '1ae10b594f09e26a7e902ecbd0600691');
});

test('RFC 8439 §A.5: the decryption example authenticates and opens to the Internet-Draft boilerplate', () => {
  const key = hex('1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0');
  const nonce = hex('000000000102030405060708');
  const aad = hex('f33388860000000000004e91');
  const sealed = hex(`64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e382d26b0
    bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c8559797a06ef4f0ef61
    c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e
    af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb4e466dae5a10
    73a6727627097a1049e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b
    eead9d67890cbb22392336fea1851f38`);
  const buf = Buffer.from(sealed);
  const len = buf.length - TAG_BYTES;
  assert.equal(new ChaCha20Poly1305(key).open(buf, 0, len, ...words(nonce), aad), true);
  const text = buf.subarray(0, len).toString();
  assert.match(text, /^Internet-Drafts are draft documents valid for a maximum of six months/);
  assert.match(text, /work in progress\.\/”$/);
});

test('equals OpenSSL and @noble/ciphers for every length 0..1100 and random AAD, at any alignment', () => {
  for (let len = 0; len <= 1100; len++) {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = randomBytes(len % 37);
    // Every fifth message is all ones: limbs at their largest, the accumulator often above 2^130 − 5.
    const plain = len % 5 === 0 ? Buffer.alloc(len, 0xff) : randomBytes(len);
    const expected = openssl(key, nonce, plain, aad);
    const ours = sealCopy(key, nonce, plain, aad, len % 7);
    assert.equal(ours.toString('hex'), expected.toString('hex'), `seal, length ${len}`);
    assert.equal(Buffer.from(chacha20poly1305(key, nonce, aad).encrypt(plain)).toString('hex'), ours.toString('hex'));
    const back = Buffer.from(ours);
    assert.equal(new ChaCha20Poly1305(key).open(back, 0, len, ...words(nonce), aad), true, `open, length ${len}`);
    assert.ok(back.subarray(0, len).equals(plain));
  }
});

test('large messages (64 KiB, a ts2021 record and more) equal OpenSSL', () => {
  for (const len of [4077, 65535, 200_000]) {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const plain = randomBytes(len);
    assert.ok(sealCopy(key, nonce, plain, new Uint8Array(0), 3).equals(openssl(key, nonce, plain, new Uint8Array(0))));
  }
});

test('a damaged ciphertext, tag, nonce or AAD does not open, and the buffer is left untouched', () => {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const aad = randomBytes(9);
  const sealed = sealCopy(key, nonce, randomBytes(300), aad);
  const aead = new ChaCha20Poly1305(key);
  const len = sealed.length - TAG_BYTES;
  for (let i = 0; i < sealed.length; i += 7) {
    const bad = Buffer.from(sealed);
    bad[i] ^= 1 << (i % 8);
    const copy = Buffer.from(bad);
    assert.equal(aead.open(bad, 0, len, ...words(nonce), aad), false, `byte ${i} flipped`);
    assert.ok(bad.equals(copy), 'a refused message is not decrypted in place');
  }
  const [n0, n1, n2] = words(nonce);
  assert.equal(aead.open(Buffer.from(sealed), 0, len, n0, n1 ^ 1, n2, aad), false, 'other nonce');
  assert.equal(aead.open(Buffer.from(sealed), 0, len, n0, n1, n2, aad.subarray(1)), false, 'other AAD');
  assert.equal(aead.open(Buffer.from(sealed), 0, len, n0, n1, n2, aad), true, 'the original still opens');
});

test('bad keys and ranges are RangeErrors, not memory outside the message', () => {
  assert.throws(() => new ChaCha20Poly1305(new Uint8Array(31)), RangeError);
  const aead = new ChaCha20Poly1305(randomBytes(32));
  assert.throws(() => aead.seal(new Uint8Array(20), 0, 5, 0, 0, 0), RangeError, 'no room for the tag');
  assert.throws(() => aead.open(new Uint8Array(20), 8, 0, 0, 0, 0), RangeError, 'tag past the end');
  assert.throws(() => aead.open(new Uint8Array(20), -1, 1, 0, 0, 0), RangeError);
  assert.throws(() => aead.open(new Uint8Array(20), 4, -3, 0, 0, 0), RangeError, 'negative length');
});

test('a transport message from Keypair.seal is what OpenSSL makes with WireGuard’s nonce, and opens in place', () => {
  const send = randomBytes(32);
  const receive = randomBytes(32);
  const a = new Keypair(send, receive, true, 1, 2, 0);
  const b = new Keypair(receive, send, false, 2, 1, 0);
  a.sendCounter = 2 ** 32 + 5; // both halves of the 64-bit counter in use
  const packet = randomBytes(1277); // padded to 1280 on the wire (MTU 1420)
  const msg = a.seal(packet, 1420);
  assert.equal(msg.length, 16 + 1280 + 16);
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(5, 4);
  nonce.writeUInt32LE(1, 8);
  const padded = Buffer.concat([packet, Buffer.alloc(3)]);
  assert.ok(msg.subarray(16).equals(openssl(send, nonce, padded, new Uint8Array(0))));
  const plain = b.open(msg, 2 ** 32 + 5);
  assert.ok(plain && Buffer.from(plain).equals(padded));
  assert.equal(plain.buffer, msg.buffer, 'decrypted inside the received message');
  assert.equal(b.open(a.seal(packet, 1420), 7), undefined, 'wrong counter');
});
