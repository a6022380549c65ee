// ts2021: the Noise_IK_25519_ChaChaPoly_BLAKE2s handshake with the control server, and its record layer.
// Pure functions over bytes; the socket side is in noise-conn.ts. Integers are big-endian throughout,
// including the transport nonce counter (unlike the Noise spec and unlike WireGuard).
import { aeadOpen, aeadSeal, dh, generateKeyPair, hash, type KeyPair, kdf, publicKeyOf } from '../wg/crypto.ts';

export const PROTOCOL_NAME = 'Noise_IK_25519_ChaChaPoly_BLAKE2s';
export const INITIATION_LEN = 101;
export const RESPONSE_LEN = 51;
export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_ERROR = 3;
export const MSG_RECORD = 4;
export const MAX_RECORD = 4096;
export const RECORD_HEADER = 3;
export const TAG = 16;
export const MAX_PLAINTEXT = MAX_RECORD - RECORD_HEADER - TAG; // 4077

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);

export class NoiseError extends Error {
  override readonly name = 'NoiseError';
}

export interface ClientHandshake {
  /** The 101-byte initiation, sent base64 in the X-Tailscale-Handshake header. */
  initiation: Uint8Array;
  /** Consumes the server's 51-byte response and returns the transport keys. */
  finish(response: Uint8Array): { sendKey: Uint8Array; receiveKey: Uint8Array; handshakeHash: Uint8Array };
}

export function prologue(version: number): Uint8Array {
  return enc.encode(`Tailscale Control Protocol v${version}`);
}

/** AEAD with the handshake's all-zero nonce. */
function seal0(k: Uint8Array, pt: Uint8Array, ad: Uint8Array): Uint8Array {
  return aeadSeal(k, 0n, pt, ad);
}

export function startClientHandshake(o: {
  version: number;
  machinePrivate: Uint8Array;
  serverPublic: Uint8Array;
  ephemeral?: KeyPair;
}): ClientHandshake {
  let h = hash(enc.encode(PROTOCOL_NAME));
  let ck = h;
  h = hash(h, prologue(o.version));
  h = hash(h, o.serverPublic);
  const e = o.ephemeral ?? generateKeyPair();
  h = hash(h, e.publicKey);
  let k: Uint8Array;
  [ck, k] = kdf(2, ck, dh(e.privateKey, o.serverPublic));
  const machineCipher = seal0(k, publicKeyOf(o.machinePrivate), h);
  h = hash(h, machineCipher);
  [ck, k] = kdf(2, ck, dh(o.machinePrivate, o.serverPublic));
  const tag1 = seal0(k, EMPTY, h);
  h = hash(h, tag1);

  const initiation = new Uint8Array(INITIATION_LEN);
  const view = new DataView(initiation.buffer);
  view.setUint16(0, o.version);
  initiation[2] = MSG_INITIATION;
  view.setUint16(3, INITIATION_LEN - 5);
  initiation.set(e.publicKey, 5);
  initiation.set(machineCipher, 37);
  initiation.set(tag1, 85);

  const hAfterInit = h;
  const ckAfterInit = ck;
  return {
    initiation,
    finish(response) {
      const { serverEphemeral, tag: tag2 } = parseHandshakeResponse(response);
      let hh = hash(hAfterInit, serverEphemeral);
      let c = ckAfterInit;
      [c] = kdf(2, c, dh(e.privateKey, serverEphemeral));
      let k2: Uint8Array;
      [c, k2] = kdf(2, c, dh(o.machinePrivate, serverEphemeral));
      try {
        aeadOpen(k2, 0n, tag2, hh);
      } catch {
        throw new NoiseError('handshake response does not authenticate (wrong server key?)');
      }
      hh = hash(hh, tag2);
      const [sendKey, receiveKey] = kdf(2, c, EMPTY);
      return { sendKey, receiveKey, handshakeHash: hh };
    },
  };
}

/** The framing of the server's handshake answer (type, length, or its refusal); NoiseError for anything else. */
export function parseHandshakeResponse(response: Uint8Array): { serverEphemeral: Uint8Array; tag: Uint8Array } {
  if (response.length < 3) throw new NoiseError('truncated handshake response');
  if (response[0] === MSG_ERROR) {
    const len = (response[1] << 8) | response[2];
    throw new NoiseError(
      `control server refused the handshake: ${Buffer.from(response.subarray(3, 3 + len)).toString('utf8')}`,
    );
  }
  if (response[0] !== MSG_RESPONSE) throw new NoiseError(`unexpected handshake message type ${response[0]}`);
  const len = (response[1] << 8) | response[2];
  if (len !== RESPONSE_LEN - 3 || response.length !== RESPONSE_LEN) {
    throw new NoiseError(`handshake response has length ${len}, expected ${RESPONSE_LEN - 3}`);
  }
  return { serverEphemeral: response.subarray(3, 35), tag: response.subarray(35, 51) };
}

/** 12-byte nonce: 4 zero bytes then the counter as a big-endian u64. */
export function recordNonce(counter: bigint): Uint8Array {
  const n = new Uint8Array(12);
  writeRecordNonce(n, counter);
  return n;
}

/** recordNonce into a 12-byte buffer the caller keeps (its first 4 bytes stay zero). */
export function writeRecordNonce(nonce: Uint8Array, counter: bigint): void {
  let c = counter;
  for (let i = 11; i >= 4; i--) {
    nonce[i] = Number(c & 0xffn);
    c >>= 8n;
  }
}
