// Opening and sealing disco envelopes for one local disco key (docs/protocol/datapath.md §2.1, §2.5). Senders that the
// caller does not know are dropped and counted before any crypto; shared keys are cached per peer.
import { randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { BoxError, openWithKey, precompute, sealWithKey } from './box.ts';
import {
  buildEnvelope,
  buildMessage,
  DISCO_BOX_OFFSET,
  DISCO_HEADER_LEN,
  DISCO_MIN_ENVELOPE,
  DISCO_NONCE_LEN,
  DiscoError,
  type DiscoMessage,
  discoSender,
  parseMessage,
} from './message.ts';

export interface DiscoCounters {
  /** Not disco at all (no magic, or too short for the sender key). */
  notDisco: number;
  /** Sender disco key not known to the caller (dropped before crypto). */
  unknownKey: number;
  /** Known sender but too short to hold a box. */
  short: number;
  /** The sender key is a low-order point: no shared secret. */
  badKey: number;
  /** The box did not open (tampered, or sealed for an old disco key of ours). */
  badBox: number;
  /** Opened but unparsable (too short for its type). */
  malformed: number;
  /** Opened, but an unknown or unsupported (peer-relay) message type: dropped silently. */
  unknownType: number;
  accepted: number;
  sealed: number;
}

export interface ReceivedDisco {
  /** The sender's disco public key (a copy). */
  sender: Uint8Array;
  message: DiscoMessage;
}

export interface DiscoCodecOptions {
  privateKey: Uint8Array;
  /**
   * Whether a sender disco key belongs to a known peer (netmap Node.DiscoKey) or an active relay
   * handshake. `key` is a view into the received datagram: copy it to keep it.
   */
  isKnownDiscoKey: (key: Uint8Array) => boolean;
  /** Shared keys cached at most (oldest evicted first). */
  maxCachedKeys?: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

export class DiscoCodec {
  readonly counters: DiscoCounters = {
    notDisco: 0,
    unknownKey: 0,
    short: 0,
    badKey: 0,
    badBox: 0,
    malformed: 0,
    unknownType: 0,
    accepted: 0,
    sealed: 0,
  };
  /** Our disco public key, sent in every envelope. */
  readonly publicKey: Uint8Array;
  private readonly priv: Uint8Array;
  private readonly isKnown: (key: Uint8Array) => boolean;
  private readonly maxCached: number;
  private readonly keys = new Map<string, Uint8Array>();

  constructor(opts: DiscoCodecOptions) {
    if (opts.privateKey.length !== 32) throw new BoxError('disco private key must be 32 bytes');
    this.priv = Uint8Array.from(opts.privateKey);
    this.publicKey = x25519.getPublicKey(this.priv);
    this.isKnown = opts.isKnownDiscoKey;
    this.maxCached = opts.maxCachedKeys ?? 4096;
  }

  /** Opens a datagram (UDP or DERP payload) that looksLikeDisco; null when it was dropped (see counters). */
  open(pkt: Uint8Array): ReceivedDisco | null {
    const sender = discoSender(pkt);
    if (!sender) {
      this.counters.notDisco++;
      return null;
    }
    if (!this.isKnown(sender)) {
      this.counters.unknownKey++;
      return null;
    }
    if (pkt.length < DISCO_MIN_ENVELOPE) {
      this.counters.short++;
      return null;
    }
    const key = this.sharedKey(sender);
    if (!key) {
      this.counters.badKey++;
      return null;
    }
    const plain = openWithKey(key, pkt.subarray(DISCO_HEADER_LEN, DISCO_BOX_OFFSET), pkt.subarray(DISCO_BOX_OFFSET));
    if (!plain) {
      this.counters.badBox++;
      return null;
    }
    let message: DiscoMessage;
    try {
      message = parseMessage(plain);
    } catch (err) {
      if (!(err instanceof DiscoError)) throw err;
      if (err.code === 'unknown-type' || err.code === 'unsupported-type') this.counters.unknownType++;
      else this.counters.malformed++;
      return null;
    }
    this.counters.accepted++;
    return { sender: sender.slice(), message };
  }

  /** Seals `message` to `peerPub`: magic ‖ our public key ‖ nonce ‖ box. Random nonce unless given. */
  seal(peerPub: Uint8Array, message: DiscoMessage, nonce?: Uint8Array): Uint8Array {
    const key = this.sharedKey(peerPub);
    if (!key) throw new BoxError('peer disco key is a low-order point');
    const n = nonce ?? new Uint8Array(randomBytes(DISCO_NONCE_LEN));
    this.counters.sealed++;
    return buildEnvelope(this.publicKey, n, sealWithKey(key, n, buildMessage(message)));
  }

  /** Drops the cached shared key for a peer (e.g. when it leaves the netmap or rotates its key). */
  forget(peerPub: Uint8Array): void {
    this.keys.delete(hex(peerPub));
  }

  private sharedKey(peerPub: Uint8Array): Uint8Array | null {
    const id = hex(peerPub);
    const hit = this.keys.get(id);
    if (hit) return hit;
    let key: Uint8Array;
    try {
      key = precompute(this.priv, peerPub);
    } catch (err) {
      if (err instanceof BoxError) return null;
      throw err;
    }
    if (this.keys.size >= this.maxCached) {
      const oldest = this.keys.keys().next();
      if (!oldest.done) this.keys.delete(oldest.value);
    }
    this.keys.set(id, key);
    return key;
  }
}
