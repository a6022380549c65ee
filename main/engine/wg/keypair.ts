// A transport session: the pair of keys one handshake derived, its counters and replay window.
// seal/open are the per-packet hot path. They run the AEAD in place (crypto/aead.ts: libsodium, or noble as the
// fallback): sealing copies the packet once, into the message it returns, and opening decrypts inside the received
// datagram. Each direction keeps its nonce buffer, so building the nonce allocates nothing.
import { type Aead, createAead, NONCE_BYTES, TAG_BYTES } from '../crypto/aead.ts';
import { MessageType, PADDING_MULTIPLE, TRANSPORT_HEADER_SIZE } from './constants.ts';
import { ReplayFilter } from './replay.ts';

/** Counters above 2^53 lose precision as JS numbers; treating them as exhausted is the safe side. */
export const COUNTER_LIMIT = Math.min(Number.MAX_SAFE_INTEGER, 2 ** 64 - 2 ** 13 - 1);
const TWO32 = 2 ** 32;

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayFilter();
  private readonly sendAead: Aead;
  private readonly receiveAead: Aead;
  private readonly sendNonce = new Uint8Array(NONCE_BYTES);
  private readonly receiveNonce = new Uint8Array(NONCE_BYTES);

  constructor(
    sendKey: Uint8Array,
    receiveKey: Uint8Array,
    readonly isInitiator: boolean,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly created: number,
  ) {
    this.sendAead = createAead(sendKey);
    this.receiveAead = createAead(receiveKey);
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
    const out = Buffer.allocUnsafe(TRANSPORT_HEADER_SIZE + padded + TAG_BYTES);
    out.writeUInt32LE(MessageType.Transport, 0);
    out.writeUInt32LE(this.remoteIndex, 4);
    out.writeUInt32LE(lo, 8);
    out.writeUInt32LE(hi, 12);
    out.set(packet, TRANSPORT_HEADER_SIZE);
    if (padded > len) out.fill(0, TRANSPORT_HEADER_SIZE + len, TRANSPORT_HEADER_SIZE + padded);
    writeTransportNonce(this.sendNonce, lo, hi);
    this.sendAead.seal(out, TRANSPORT_HEADER_SIZE, padded, this.sendNonce);
    return out;
  }

  /**
   * Authenticates and decrypts a transport message in place. Returns the padded plaintext (a view into
   * `message`), or undefined when it does not authenticate (then the message's payload bytes are not kept: drop
   * it). The replay check is the caller's, after authentication.
   */
  open(message: Uint8Array, counter: number): Uint8Array | undefined {
    const len = message.length - TRANSPORT_HEADER_SIZE - TAG_BYTES;
    writeTransportNonce(this.receiveNonce, counter % TWO32, Math.floor(counter / TWO32));
    if (!this.receiveAead.open(message, TRANSPORT_HEADER_SIZE, len, this.receiveNonce)) return undefined;
    return message.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + len);
  }
}

/** WireGuard's transport nonce: 32 zero bits, then the counter (lo, hi: its 32-bit halves) as a little-endian u64. */
export function writeTransportNonce(nonce: Uint8Array, lo: number, hi: number): void {
  nonce[4] = lo;
  nonce[5] = lo >>> 8;
  nonce[6] = lo >>> 16;
  nonce[7] = lo >>> 24;
  nonce[8] = hi;
  nonce[9] = hi >>> 8;
  nonce[10] = hi >>> 16;
  nonce[11] = hi >>> 24;
}

/** Reads the 64-bit LE counter of a transport message as a number (exact below 2^53). */
export function transportCounter(message: Uint8Array): number {
  return readU32LE(message, 8) + readU32LE(message, 12) * TWO32;
}

export function readU32LE(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
