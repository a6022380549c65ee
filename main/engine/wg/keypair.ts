// A transport session: the pair of keys one handshake derived, its counters and replay window.
// seal/open are the per-packet hot path: one node:crypto context per packet (OpenSSL ChaCha20-Poly1305),
// keys held as KeyObjects so OpenSSL does not re-import them each time.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { MessageType, PADDING_MULTIPLE, TRANSPORT_HEADER_SIZE } from './constants.ts';
import { TAG_LEN } from './crypto.ts';
import { ReplayFilter } from './replay.ts';

/** Counters above 2^53 lose precision as JS numbers; treating them as exhausted is the safe side. */
export const COUNTER_LIMIT = Math.min(Number.MAX_SAFE_INTEGER, 2 ** 64 - 2 ** 13 - 1);
const TWO32 = 2 ** 32;

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayFilter();
  private readonly sendKey: KeyObject;
  private readonly receiveKey: KeyObject;

  constructor(
    sendKey: Uint8Array,
    receiveKey: Uint8Array,
    readonly isInitiator: boolean,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly created: number,
  ) {
    this.sendKey = createSecretKey(sendKey);
    this.receiveKey = createSecretKey(receiveKey);
  }

  /**
   * Encrypts one IP packet (or an empty keepalive) into a fresh transport message. Padding goes up to a
   * multiple of 16 but never past the MTU.
   */
  seal(packet: Uint8Array, mtu: number): Buffer {
    const counter = this.sendCounter++;
    const len = packet.length;
    let padded = len;
    const rem = len % PADDING_MULTIPLE;
    if (rem !== 0) padded = Math.max(len, Math.min(len + PADDING_MULTIPLE - rem, mtu));
    const lo = counter % TWO32;
    const hi = Math.floor(counter / TWO32);
    nonce.writeUInt32LE(lo, 4);
    nonce.writeUInt32LE(hi, 8);
    const c = createCipheriv('chacha20-poly1305', this.sendKey, nonce, AEAD_OPTIONS);
    const body = c.update(packet);
    const pad = padded > len ? c.update(ZERO_PAD.subarray(0, padded - len)) : undefined;
    c.final();
    const out = Buffer.allocUnsafe(TRANSPORT_HEADER_SIZE + padded + TAG_LEN);
    out.writeUInt32LE(MessageType.Transport, 0);
    out.writeUInt32LE(this.remoteIndex, 4);
    out.writeUInt32LE(lo, 8);
    out.writeUInt32LE(hi, 12);
    out.set(body, TRANSPORT_HEADER_SIZE);
    if (pad) out.set(pad, TRANSPORT_HEADER_SIZE + len);
    out.set(c.getAuthTag(), TRANSPORT_HEADER_SIZE + padded);
    return out;
  }

  /**
   * Decrypts a transport message. Returns the padded plaintext, or undefined when it does not
   * authenticate. The replay check is the caller's, after authentication.
   */
  open(message: Uint8Array, counter: number): Buffer | undefined {
    nonce.writeUInt32LE(counter % TWO32, 4);
    nonce.writeUInt32LE(Math.floor(counter / TWO32), 8);
    const d = createDecipheriv('chacha20-poly1305', this.receiveKey, nonce, AEAD_OPTIONS);
    const end = message.length - TAG_LEN;
    d.setAuthTag(message.subarray(end));
    const body = d.update(message.subarray(TRANSPORT_HEADER_SIZE, end));
    try {
      d.final();
    } catch {
      return undefined;
    }
    return body;
  }
}

// One scratch nonce: createCipheriv copies the IV, and JS runs one packet at a time.
const nonce = Buffer.alloc(12);
const AEAD_OPTIONS = { authTagLength: TAG_LEN } as const;
const ZERO_PAD = new Uint8Array(PADDING_MULTIPLE);

/** Reads the 64-bit LE counter of a transport message as a number (exact below 2^53). */
export function transportCounter(message: Uint8Array): number {
  return readU32LE(message, 8) + readU32LE(message, 12) * TWO32;
}

export function readU32LE(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
