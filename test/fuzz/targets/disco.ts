// Disco datagrams (over UDP or DERP) from peers: DiscoCodec.open returns a message or null and never throws. The
// first byte picks the mode: 0 the body is a whole datagram; 1 the body is the plaintext, sealed here from a known
// peer's key so the fuzzer reaches the message parser behind the box.
import { randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { precompute, sealWithKey } from '../../../main/engine/disco/box.ts';
import { DiscoCodec } from '../../../main/engine/disco/codec.ts';
import { buildEnvelope } from '../../../main/engine/disco/message.ts';
import { check } from '../contract.ts';

const ours = new Uint8Array(randomBytes(32));
const peer = new Uint8Array(randomBytes(32));
const peerPublic = x25519.getPublicKey(peer);
const codec = new DiscoCodec({ privateKey: ours, isKnownDiscoKey: () => true, maxCachedKeys: 64 });
const nonce = new Uint8Array(24).fill(7);
const key = precompute(peer, codec.publicKey);

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const body = data.subarray(1);
  const pkt = data[0] & 1 ? buildEnvelope(peerPublic, nonce, sealWithKey(key, nonce, body)) : body;
  const r = codec.open(pkt);
  if (!r) return;
  const m = r.message;
  check(r.sender.length === 32, 'sender key length');
  if (m.type === 'ping') check(m.txId.length === 12 && m.padding >= 0, 'ping fields');
  if (m.type === 'pong') check(m.txId.length === 12 && m.src.port >= 0 && m.src.port <= 0xffff, 'pong fields');
}
