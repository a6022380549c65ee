// A WireGuard transport round trip on whichever AEAD this process runs, checked against OpenSSL with WireGuard's
// nonce. aead.test.ts runs it in its own process and, with TRELLIS_AEAD=noble, in a child (the choice is made once
// per process, when crypto/aead.ts loads).
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { Keypair } from '../../main/engine/wg/keypair.ts';

export function checkKeypair(): void {
  const send = randomBytes(32);
  const receive = randomBytes(32);
  const a = new Keypair(send, receive, true, 1, 2, 0);
  const b = new Keypair(receive, send, false, 2, 1, 0);
  a.sendCounter = 2 ** 32 + 5; // both halves of the 64-bit counter in use
  const packet = randomBytes(1277); // padded to 1280 on the wire (MTU 1420)
  const msg = a.seal(packet, 1420);
  assert.equal(msg.length, 16 + 1280 + 16);
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(2n ** 32n + 5n, 4);
  const padded = Buffer.concat([packet, Buffer.alloc(3)]);
  const c = createCipheriv('chacha20-poly1305', send, nonce, { authTagLength: 16 });
  assert.ok(msg.subarray(16).equals(Buffer.concat([c.update(padded), c.final(), c.getAuthTag()])));
  const plain = b.open(msg, 2 ** 32 + 5);
  assert.ok(plain && Buffer.from(plain).equals(padded));
  assert.equal(plain.buffer, msg.buffer, 'decrypted inside the received message');
  assert.equal(b.open(a.seal(packet, 1420), 7), undefined, 'wrong counter');
}
