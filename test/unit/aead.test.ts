// The engine's ChaCha20-Poly1305, both implementations (libsodium through sodium-native, and the @noble/ciphers
// fallback): RFC 8439's vectors, WireGuard's and ts2021's nonce layouts against OpenSSL (node:crypto), every length
// 0..1100, tampering, and the in-place contract the transport relies on.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { writeRecordNonce } from '../../main/engine/control/noise.ts';
import {
  type AeadImplementation,
  aeadFallbackReason,
  aeadImplementation,
  createAead,
  TAG_BYTES,
} from '../../main/engine/crypto/aead.ts';
import { writeTransportNonce } from '../../main/engine/wg/keypair.ts';
import { checkKeypair } from './aead-keypair-check.ts';

const IMPLS: AeadImplementation[] = ['libsodium', 'noble'];
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Seals a copy of `plain` at `offset` of a fresh buffer with sentinel bytes around it; returns ciphertext‖tag. */
function sealCopy(
  impl: AeadImplementation,
  key: Uint8Array,
  nonce: Uint8Array,
  plain: Uint8Array,
  aad?: Uint8Array,
  offset = 0,
): Buffer {
  const buf = Buffer.alloc(offset + plain.length + TAG_BYTES + 5, 0xa5);
  buf.set(plain, offset);
  createAead(key, impl).seal(buf, offset, plain.length, nonce, aad);
  assert.ok(
    buf.subarray(0, offset).every((b) => b === 0xa5),
    'nothing written before the range',
  );
  assert.ok(
    buf.subarray(buf.length - 5).every((b) => b === 0xa5),
    'nothing written after the tag',
  );
  return buf.subarray(offset, offset + plain.length + TAG_BYTES);
}

function openssl(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array, aad?: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  if (aad) c.setAAD(aad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

test('libsodium is what runs here (sodium-native ships a prebuild for this platform)', () => {
  if (process.env.TRELLIS_AEAD === 'noble') {
    assert.equal(aeadImplementation(), 'noble');
    assert.equal(aeadFallbackReason(), 'TRELLIS_AEAD=noble');
  } else {
    assert.equal(aeadImplementation(), 'libsodium', aeadFallbackReason());
    assert.equal(aeadFallbackReason(), undefined);
  }
});

for (const impl of IMPLS) {
  test(`${impl}: RFC 8439 §2.8.2, the AEAD example seals to the published ciphertext and tag`, () => {
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('070000004041424344454647');
    const aad = hex('50515253c0c1c2c3c4c5c6c7');
    const plain = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const sealed = sealCopy(impl, key, nonce, plain, aad, 3);
    assert.equal(
      sealed.toString('hex'),
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
        '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
        '3ff4def08e4b7a9de576d26586cec64b6116' +
        '1ae10b594f09e26a7e902ecbd0600691',
    );
  });

  test(`${impl}: RFC 8439 §A.5, the decryption example authenticates and opens to the Internet-Draft text`, () => {
    const key = hex('1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0');
    const nonce = hex('000000000102030405060708');
    const aad = hex('f33388860000000000004e91');
    const sealed = hex(`64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e382d26b0
      bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c8559797a06ef4f0ef61
      c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e
      af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb4e466dae5a10
      73a6727627097a1049e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b
      eead9d67890cbb22392336fea1851f38`);
    const buf = Buffer.concat([Buffer.alloc(1), sealed]); // at offset 1: no alignment assumed
    const len = sealed.length - TAG_BYTES;
    assert.equal(createAead(key, impl).open(buf, 1, len, nonce, aad), true);
    const text = buf.subarray(1, 1 + len).toString();
    assert.equal(len, 265);
    assert.match(text, /^Internet-Drafts are draft documents valid for a maximum of six months/);
    assert.match(text, /work in progress\.\/”$/);
    assert.ok(buf.subarray(1 + len).equals(sealed.subarray(len)), 'the tag is left as it was');
  });

  test(`${impl}: WireGuard's nonce, 32 zero bits ‖ LE64(counter), seals as OpenSSL does`, () => {
    const key = randomBytes(32);
    const packet = randomBytes(1280);
    for (const counter of [0, 1, 255, 2 ** 32 - 1, 2 ** 32 + 5, 2 ** 53 - 1]) {
      const reference = Buffer.alloc(12); // built independently of writeTransportNonce
      reference.writeBigUInt64LE(BigInt(counter), 4);
      const nonce = new Uint8Array(12);
      writeTransportNonce(nonce, counter % 2 ** 32, Math.floor(counter / 2 ** 32));
      assert.ok(Buffer.from(nonce).equals(reference), `nonce for ${counter}`);
      assert.ok(
        sealCopy(impl, key, nonce, packet, undefined, 16).equals(openssl(key, reference, packet)),
        `${counter}`,
      );
    }
  });

  test(`${impl}: ts2021's record nonce, 4 zero bytes ‖ BE64(counter), seals as OpenSSL does`, () => {
    const nonce = new Uint8Array(12);
    writeRecordNonce(nonce, 0x0102030405060708n);
    assert.equal(Buffer.from(nonce).toString('hex'), '000000000102030405060708');
    writeRecordNonce(nonce, 1n);
    assert.equal(Buffer.from(nonce).toString('hex'), '000000000000000000000001');
    const key = randomBytes(32);
    const record = randomBytes(4077);
    assert.ok(sealCopy(impl, key, nonce, record, undefined, 3).equals(openssl(key, nonce, record)));
  });

  test(`${impl}: equals OpenSSL for every length 0..1100 with random AAD, at any offset, and opens back`, () => {
    const aead = createAead(randomBytes(32), impl);
    for (let len = 0; len <= 1100; len++) {
      const key = randomBytes(32);
      const nonce = randomBytes(12);
      const aad = len % 3 === 0 ? undefined : randomBytes(len % 37);
      const plain = len % 5 === 0 ? Buffer.alloc(len, 0xff) : randomBytes(len);
      const offset = len % 7;
      const ours = sealCopy(impl, key, nonce, plain, aad, offset);
      assert.ok(ours.equals(openssl(key, nonce, plain, aad)), `seal, length ${len}`);
      const back = Buffer.concat([Buffer.alloc(offset, 0x5a), ours, Buffer.alloc(3, 0x5a)]);
      assert.equal(createAead(key, impl).open(back, offset, len, nonce, aad), true, `open, length ${len}`);
      assert.ok(back.subarray(offset, offset + len).equals(plain), `plaintext, length ${len}`);
      assert.ok(back.subarray(offset + len, offset + len + TAG_BYTES).equals(ours.subarray(len)), 'tag kept');
      assert.ok(back.subarray(0, offset).every((b) => b === 0x5a) && back.subarray(-3).every((b) => b === 0x5a));
      // One key, many nonces: an instance holds no per-message state.
      const again = Buffer.concat([plain, Buffer.alloc(TAG_BYTES)]);
      aead.seal(again, 0, len, nonce, aad);
      assert.equal(aead.open(again, 0, len, nonce, aad), true);
      assert.ok(again.subarray(0, len).equals(plain));
    }
  });

  test(`${impl}: large messages (a ts2021 record, 64 KiB and more) equal OpenSSL`, () => {
    for (const len of [4077, 65535, 200_000]) {
      const key = randomBytes(32);
      const nonce = randomBytes(12);
      const plain = randomBytes(len);
      assert.ok(sealCopy(impl, key, nonce, plain, undefined, 3).equals(openssl(key, nonce, plain)), `${len}`);
    }
  });

  test(`${impl}: a damaged ciphertext, tag, nonce or AAD does not open, and yields no plaintext`, () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = randomBytes(9);
    const plain = randomBytes(300);
    const sealed = sealCopy(impl, key, nonce, plain, aad);
    const aead = createAead(key, impl);
    const len = sealed.length - TAG_BYTES;
    for (let i = 0; i < sealed.length; i += 7) {
      const bad = Buffer.from(sealed);
      bad[i] ^= 1 << (i % 8);
      assert.equal(aead.open(bad, 0, len, nonce, aad), false, `byte ${i} flipped`);
      assert.ok(!bad.subarray(0, len).equals(plain), 'nothing decrypted');
      if (impl === 'libsodium') {
        assert.ok(
          bad.subarray(0, len).every((b) => b === 0),
          'libsodium clears the range',
        );
      } else {
        assert.equal(bad[i], sealed[i] ^ (1 << (i % 8)), 'noble leaves the message as it was');
      }
    }
    const otherNonce = Buffer.from(nonce);
    otherNonce[11] ^= 1;
    assert.equal(aead.open(Buffer.from(sealed), 0, len, otherNonce, aad), false, 'other nonce');
    assert.equal(aead.open(Buffer.from(sealed), 0, len, nonce, aad.subarray(1)), false, 'other AAD');
    assert.equal(aead.open(Buffer.from(sealed), 0, len, nonce), false, 'no AAD');
    assert.equal(createAead(randomBytes(32), impl).open(Buffer.from(sealed), 0, len, nonce, aad), false, 'other key');
    assert.equal(aead.open(Buffer.from(sealed), 0, len, nonce, aad), true, 'the original still opens');
  });

  test(`${impl}: bad keys, nonces and ranges are RangeErrors, not memory outside the message`, () => {
    assert.throws(() => createAead(new Uint8Array(31), impl), RangeError);
    const aead = createAead(randomBytes(32), impl);
    const n = new Uint8Array(12);
    assert.throws(() => aead.seal(new Uint8Array(20), 0, 5, n), RangeError, 'no room for the tag');
    assert.throws(() => aead.open(new Uint8Array(20), 8, 0, n), RangeError, 'tag past the end');
    assert.throws(() => aead.open(new Uint8Array(20), -1, 1, n), RangeError);
    assert.throws(() => aead.open(new Uint8Array(20), 4, -3, n), RangeError, 'negative length');
    assert.throws(() => aead.seal(new Uint8Array(20), 0.5, 1, n), RangeError, 'fractional offset');
    assert.throws(() => aead.seal(new Uint8Array(20), 0, 4, new Uint8Array(8)), RangeError, 'short nonce');
  });

  test(`${impl}: the key is copied, so the caller may wipe its own`, () => {
    const key = randomBytes(32);
    const aead = createAead(key, impl);
    const expected = openssl(Buffer.from(key), new Uint8Array(12), Buffer.from('hello'));
    key.fill(0);
    const buf = Buffer.concat([Buffer.from('hello'), Buffer.alloc(TAG_BYTES)]);
    aead.seal(buf, 0, 5, new Uint8Array(12));
    assert.ok(buf.equals(expected));
  });
}

test('libsodium and noble open each other’s messages', () => {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const plain = randomBytes(1280);
  for (const [a, b] of [IMPLS, [...IMPLS].reverse()]) {
    const msg = Buffer.from(sealCopy(a, key, nonce, plain));
    assert.equal(createAead(key, b).open(msg, 0, plain.length, nonce), true, `${a} → ${b}`);
    assert.ok(msg.subarray(0, plain.length).equals(plain));
  }
});

for (const impl of IMPLS) {
  test(`${impl}: sealDetached/openDetached on ready-made views are seal/open, and refuse a bad tag`, () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = randomBytes(7);
    const plain = randomBytes(333);
    const aead = createAead(key, impl);
    const buf = Buffer.alloc(8 + plain.length + TAG_BYTES);
    buf.set(plain, 8);
    const data = buf.subarray(8, 8 + plain.length);
    const tag = buf.subarray(8 + plain.length);
    aead.sealDetached(data, tag, nonce, aad);
    assert.ok(buf.subarray(8).equals(openssl(key, nonce, plain, aad)));
    assert.equal(aead.openDetached(data, tag, nonce, aad), true);
    assert.ok(data.equals(plain));
    aead.sealDetached(data, tag, nonce, aad);
    tag[0] ^= 1;
    assert.equal(aead.openDetached(data, tag, nonce, aad), false);
    assert.throws(() => aead.sealDetached(data, tag.subarray(1), nonce), RangeError);
  });
}

test('a transport message from Keypair.seal is what OpenSSL makes with WireGuard’s nonce, and opens in place', () => {
  checkKeypair();
});

test('TRELLIS_AEAD=noble: the fallback runs the transport and says why', async () => {
  const url = (p: string): string => JSON.stringify(new URL(p, import.meta.url).href);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { aeadImplementation, aeadFallbackReason } from ${url('../../main/engine/crypto/aead.ts')};
       import { checkKeypair } from ${url('./aead-keypair-check.ts')};
       checkKeypair();
       console.log(JSON.stringify([aeadImplementation(), aeadFallbackReason()]));`,
    ],
    { env: { ...process.env, TRELLIS_AEAD: 'noble' }, timeout: 60_000 },
  );
  assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1) ?? ''), ['noble', 'TRELLIS_AEAD=noble']);
});
