// A transport session: the pair of keys one handshake derived, its counters and replay window.
// seal/open are the per-packet hot path. They run the TypeScript ChaCha20-Poly1305 in place: sealing copies the
// packet once, into the message it returns, and opening decrypts inside the received datagram. node:crypto
// would allocate a cipher context and three buffers per packet, is no faster per packet here (the bench measures
// both), and has no chacha20-poly1305 at all under Electron's BoringSSL.
import { ChaCha20Poly1305, TAG_BYTES } from './chacha20poly1305.ts';
import { MessageType, PADDING_MULTIPLE, TRANSPORT_HEADER_SIZE } from './constants.ts';
import { ReplayFilter } from './replay.ts';

/** Counters above 2^53 lose precision as JS numbers; treating them as exhausted is the safe side. */
export const COUNTER_LIMIT = Math.min(Number.MAX_SAFE_INTEGER, 2 ** 64 - 2 ** 13 - 1);
const TWO32 = 2 ** 32;

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayFilter();
  private readonly sendAead: ChaCha20Poly1305;
  private readonly receiveAead: ChaCha20Poly1305;

  constructor(
    sendKey: Uint8Array,
    receiveKey: Uint8Array,
    readonly isInitiator: boolean,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly created: number,
  ) {
    this.sendAead = new ChaCha20Poly1305(sendKey);
    this.receiveAead = new ChaCha20Poly1305(receiveKey);
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
    // WireGuard's nonce: 32 zero bits, then the counter as a little-endian u64.
    this.sendAead.seal(out, TRANSPORT_HEADER_SIZE, padded, 0, lo, hi);
    return out;
  }

  /**
   * Authenticates and decrypts a transport message in place. Returns the padded plaintext (a view into
   * `message`), or undefined when it does not authenticate (message untouched). The replay check is the
   * caller's, after authentication.
   */
  open(message: Uint8Array, counter: number): Uint8Array | undefined {
    const len = message.length - TRANSPORT_HEADER_SIZE - TAG_BYTES;
    const lo = counter % TWO32;
    const hi = Math.floor(counter / TWO32);
    if (!this.receiveAead.open(message, TRANSPORT_HEADER_SIZE, len, 0, lo, hi)) return undefined;
    return message.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + len);
  }
}

/** Reads the 64-bit LE counter of a transport message as a number (exact below 2^53). */
export function transportCounter(message: Uint8Array): number {
  return readU32LE(message, 8) + readU32LE(message, 12) * TWO32;
}

export function readU32LE(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
