// A transport session: the pair of keys one handshake derived, its counters and replay window.
// seal/open are the per-packet hot path. They run the AEAD in place (crypto/aead.ts: libsodium, or noble as the
// fallback): sealing copies the packet once, into the message it returns, and opening decrypts inside the received
// datagram. Each direction keeps its nonce buffer, so building the nonce allocates nothing. sealInto writes into a
// reusable MessageSlot whose views (message, AEAD data, AEAD tag) are made once per message length: no allocation.
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
    const padded = paddedLength(packet.length, mtu);
    const out = Buffer.allocUnsafe(TRANSPORT_HEADER_SIZE + padded + TAG_BYTES);
    const data = out.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + padded);
    this.sealTo(packet, padded, out, data, out.subarray(TRANSPORT_HEADER_SIZE + padded));
    return out;
  }

  /**
   * seal() into a reusable slot: returns the message, a view into slot.buf valid until the slot is reused, or
   * undefined (nothing sealed, no counter spent) when the padded packet exceeds the slot's capacity.
   */
  sealInto(packet: Uint8Array, mtu: number, slot: MessageSlot): Uint8Array | undefined {
    const padded = paddedLength(packet.length, mtu);
    if (padded > slot.capacity) return undefined;
    const v = slot.viewsFor(padded);
    this.sealTo(packet, padded, v.msg, v.data, v.tag);
    return v.msg;
  }

  /** Header, packet, zero padding, then the AEAD in place: `data` and `tag` are out's payload and tag views. */
  private sealTo(packet: Uint8Array, padded: number, out: Uint8Array, data: Uint8Array, tag: Uint8Array): void {
    const counter = this.sendCounter++;
    const len = packet.length;
    const lo = counter % TWO32;
    const hi = Math.floor(counter / TWO32);
    writeU32LE(out, 0, MessageType.Transport);
    writeU32LE(out, 4, this.remoteIndex);
    writeU32LE(out, 8, lo);
    writeU32LE(out, 12, hi);
    out.set(packet, TRANSPORT_HEADER_SIZE);
    if (padded > len) out.fill(0, TRANSPORT_HEADER_SIZE + len, TRANSPORT_HEADER_SIZE + padded);
    writeTransportNonce(this.sendNonce, lo, hi);
    this.sendAead.sealDetached(data, tag, this.sendNonce);
  }

  /**
   * Authenticates and decrypts a transport message in place. Returns the padded plaintext (a view into
   * `message`), or undefined when it does not authenticate (then the message's payload bytes are not kept: drop
   * it). The replay check is the caller's, after authentication. `views`, when the receiver keeps them for the
   * slot `message` lies in (views.msg === message), spare the per-message views: the plaintext is views.data.
   */
  open(message: Uint8Array, counter: number, views?: MessageViews): Uint8Array | undefined {
    const len = message.length - TRANSPORT_HEADER_SIZE - TAG_BYTES;
    writeTransportNonce(this.receiveNonce, counter % TWO32, Math.floor(counter / TWO32));
    if (views !== undefined && views.msg === message) {
      return this.receiveAead.openDetached(views.data, views.tag, this.receiveNonce) ? views.data : undefined;
    }
    if (!this.receiveAead.open(message, TRANSPORT_HEADER_SIZE, len, this.receiveNonce)) return undefined;
    return message.subarray(TRANSPORT_HEADER_SIZE, TRANSPORT_HEADER_SIZE + len);
  }
}

/** Padding goes up to a multiple of 16 but never past the MTU (nor below the packet). */
function paddedLength(len: number, mtu: number): number {
  const rem = len % PADDING_MULTIPLE;
  return rem === 0 ? len : Math.max(len, Math.min(len + PADDING_MULTIPLE - rem, mtu));
}

/** One message's views into a slot: the whole message, the AEAD's data (the padded packet) and its tag. */
export interface MessageViews {
  readonly msg: Uint8Array;
  readonly data: Uint8Array;
  readonly tag: Uint8Array;
  /** Receive side: the last unpadded IP packet taken from `data` (a view of its start), kept for the next one. */
  inner?: Uint8Array;
}

/**
 * A reusable transport-message buffer for padded payloads up to `capacity` bytes: its own, or a region of `within`
 * starting at `at` (a receive batch's slot). The views for each message length are made the first time that length
 * is used here and kept (padded lengths are multiples of 16, bar the MTU itself, so a slot holds at most
 * capacity/16 + 1 of them).
 */
export class MessageSlot {
  readonly buf: Uint8Array;
  private readonly byLength: (MessageViews | undefined)[];

  constructor(
    readonly capacity: number,
    within?: Uint8Array,
    at = 0,
  ) {
    const size = TRANSPORT_HEADER_SIZE + capacity + TAG_BYTES;
    this.buf = within ? within.subarray(at, at + size) : new Uint8Array(size);
    this.byLength = new Array(Math.ceil(capacity / PADDING_MULTIPLE) + 1).fill(undefined);
  }

  viewsFor(padded: number): MessageViews {
    const k = Math.ceil(padded / PADDING_MULTIPLE);
    let v = this.byLength[k];
    if (v === undefined || v.data.length !== padded) {
      const end = TRANSPORT_HEADER_SIZE + padded;
      v = {
        msg: this.buf.subarray(0, end + TAG_BYTES),
        data: this.buf.subarray(TRANSPORT_HEADER_SIZE, end),
        tag: this.buf.subarray(end, end + TAG_BYTES),
      };
      this.byLength[k] = v;
    }
    return v;
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

function writeU32LE(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

export function readU32LE(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
