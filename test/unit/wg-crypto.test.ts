// Known-answer tests for every WireGuard primitive, and equivalence of the node:crypto AEAD with @noble.
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { CONSTRUCTION, IDENTIFIER } from '../../main/engine/wg/constants.ts';
import { aeadOpen, aeadSeal, CryptoError, dh, hash, kdf, mac, publicKeyOf } from '../../main/engine/wg/crypto.ts';
import { Keypair, MessageSlot } from '../../main/engine/wg/keypair.ts';
import { tai64n, tai64nAfter } from '../../main/engine/wg/tai64n.ts';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('BLAKE2s-256("abc") (RFC 7693 appendix B)', () => {
  assert.equal(
    toHex(hash(new TextEncoder().encode('abc'))),
    '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982',
  );
});

test('BLAKE2s self-test over keyed and unkeyed lengths (RFC 7693 appendix E)', () => {
  const seq = (len: number, seed: number): Uint8Array => {
    const out = new Uint8Array(len);
    let a = Math.imul(0xdead4bad, seed) >>> 0;
    let b = 1;
    for (let i = 0; i < len; i++) {
      const t = (a + b) >>> 0;
      a = b;
      b = t;
      out[i] = (t >>> 24) & 0xff;
    }
    return out;
  };
  const grand = blake2s.create({ dkLen: 32 });
  for (const outLen of [16, 20, 28, 32]) {
    for (const inLen of [0, 3, 64, 65, 255, 1024]) {
      const input = seq(inLen, inLen);
      grand.update(blake2s(input, { dkLen: outLen }));
      const key = seq(outLen, outLen);
      const keyed = blake2s(input, { dkLen: outLen, key });
      if (outLen === 16) assert.deepEqual(mac(key, input), keyed, 'mac() is keyed BLAKE2s-128');
      grand.update(keyed);
    }
  }
  assert.equal(toHex(grand.digest()), '6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe');
});

test('HKDF over HMAC-BLAKE2s (wireguard-go kdf vectors)', () => {
  const cases = [
    [
      '746573742d6b6579',
      '746573742d696e707574',
      '6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633',
      'df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a',
      'fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24',
    ],
    [
      '776972656775617264',
      '776972656775617264',
      '491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8',
      '1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f',
      '31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160',
    ],
    [
      '',
      '',
      '8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
      '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
      '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e',
    ],
  ];
  for (const [key, input, t1, t2, t3] of cases) {
    assert.deepEqual(kdf(3, hex(key), hex(input)).map(toHex), [t1, t2, t3]);
    assert.deepEqual(kdf(2, hex(key), hex(input)).map(toHex), [t1, t2]);
    assert.deepEqual(kdf(1, hex(key), hex(input)).map(toHex), [t1]);
  }
});

test('initial chaining key and hash match the protocol constants', () => {
  const enc = new TextEncoder();
  const ck = hash(enc.encode(CONSTRUCTION));
  assert.equal(toHex(ck), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
  assert.equal(
    toHex(hash(ck, enc.encode(IDENTIFIER))),
    '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3',
  );
});

test('X25519 (RFC 7748 §6.1)', () => {
  const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  assert.equal(toHex(publicKeyOf(alice)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(toHex(publicKeyOf(bob)), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  assert.equal(toHex(dh(alice, publicKeyOf(bob))), shared);
  assert.equal(toHex(dh(bob, publicKeyOf(alice))), shared);
  // A low-order point gives an all-zero secret, which WireGuard must refuse.
  assert.throws(() => dh(alice, new Uint8Array(32)), CryptoError);
});

test('ChaCha20-Poly1305 through node:crypto (RFC 8439 §2.8.2)', () => {
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('070000004041424344454647');
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const pt = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: pt.length });
  const ct = Buffer.concat([c.update(pt), c.final()]);
  assert.equal(
    ct.toString('hex'),
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b29' +
      '05d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116',
  );
  assert.equal(c.getAuthTag().toString('hex'), '1ae10b594f09e26a7e902ecbd0600691');
  assert.deepEqual(chacha20poly1305(key, nonce, aad).encrypt(pt), new Uint8Array([...ct, ...c.getAuthTag()]));
});

test('aeadSeal/aeadOpen equal @noble/ciphers for random keys, counters and lengths', () => {
  for (let i = 0; i < 50; i++) {
    const key = randomBytes(32);
    const counter = BigInt(randomBytes(6).readUIntLE(0, 6));
    const pt = randomBytes(i * 37);
    const ad = randomBytes(i % 3 === 0 ? 0 : 32);
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, counter, true);
    const sealed = aeadSeal(key, counter, pt, ad);
    assert.deepEqual(new Uint8Array(sealed), chacha20poly1305(key, nonce, ad).encrypt(pt));
    assert.deepEqual(new Uint8Array(aeadOpen(key, counter, sealed, ad)), new Uint8Array(pt));
    const tampered = new Uint8Array(sealed);
    tampered[tampered.length - 1] ^= 1;
    assert.throws(() => aeadOpen(key, counter, tampered, ad), CryptoError);
  }
});

test('transport seal pads to 16 within the MTU and matches @noble; open rejects tampering', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const a = new Keypair(k1, k2, true, 1, 2, 0);
  const b = new Keypair(k2, k1, false, 2, 1, 0);
  for (const len of [0, 1, 15, 16, 17, 1279, 1280]) {
    const pkt = randomBytes(len);
    const msg = a.seal(pkt, 1280);
    const padded = len % 16 === 0 ? len : Math.min(len + 16 - (len % 16), 1280);
    assert.equal(msg.length, 16 + padded + 16, `length for ${len}`);
    const counter = a.sendCounter - 1;
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setUint32(4, counter, true);
    const plain = new Uint8Array(padded);
    plain.set(pkt);
    assert.deepEqual(new Uint8Array(msg.subarray(16)), chacha20poly1305(k1, nonce).encrypt(plain));
    const opened = b.open(msg, counter);
    assert.ok(opened);
    assert.deepEqual(new Uint8Array(opened.subarray(0, len)), new Uint8Array(pkt));
    msg[20] ^= 0x80;
    assert.equal(b.open(msg, counter), undefined);
  }
});

test('sealInto a reusable slot and open with a receive slot’s views: same messages as seal/open, views reused', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const a = new Keypair(k1, k2, true, 1, 2, 0);
  const ref = new Keypair(k1, k2, true, 1, 2, 0);
  const b = new Keypair(k2, k1, false, 2, 1, 0);
  const send = new MessageSlot(1280);
  const recvBuf = new Uint8Array(3 * 4096);
  const recv = new MessageSlot(4096 - 32, recvBuf, 4096);
  const seen = new Map<number, Uint8Array>();
  for (const len of [0, 1, 52, 1280, 52, 1300, 1279]) {
    const pkt = randomBytes(len);
    const msg = a.sealInto(pkt, 1280, send);
    const expected = ref.seal(pkt, 1280);
    if (len > 1280) {
      assert.equal(msg, undefined, 'over capacity: nothing sealed');
      assert.equal(a.sendCounter, ref.sendCounter - 1, 'and no counter spent');
      a.sendCounter++;
      continue;
    }
    assert.ok(msg && msg.buffer === send.buf.buffer);
    assert.deepEqual(new Uint8Array(msg), new Uint8Array(expected));
    if (seen.has(msg.length)) assert.equal(msg, seen.get(msg.length), 'the view for a length is made once');
    seen.set(msg.length, msg);
    const views = recv.viewsFor(msg.length - 32);
    views.msg.set(msg);
    const plain = b.open(views.msg, a.sendCounter - 1, views);
    assert.equal(plain, views.data);
    assert.deepEqual(plain?.subarray(0, len), new Uint8Array(pkt));
    views.msg.set(msg);
    views.msg[views.msg.length - 1] ^= 1;
    assert.equal(b.open(views.msg, a.sendCounter - 1, views), undefined, 'tampered');
  }
});

test('TAI64N is big-endian seconds since 1970 plus 2^62+10, nanoseconds whitened', () => {
  const t = tai64n(1_700_000_000_123);
  const view = new DataView(t.buffer);
  assert.equal(view.getBigUint64(0), 0x400000000000000an + 1_700_000_000n);
  assert.equal(view.getUint32(8) & 0xffffff, 0);
  assert.equal(view.getUint32(8), 123_000_000 & ~0xffffff);
  assert.ok(tai64nAfter(tai64n(1_700_000_001_000), t));
  assert.ok(!tai64nAfter(t, t));
});
