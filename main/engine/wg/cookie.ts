// MAC1/MAC2 and the cookie mechanism (whitepaper §5.4.4, §5.4.7). The checker guards our own static key;
// a generator exists per peer and stamps the MACs on what we send to that peer.
import { randomBytes } from 'node:crypto';
import { COOKIE_REPLY_SIZE, LABEL_COOKIE, LABEL_MAC1, MessageType } from './constants.ts';
import { equalBytes, hash, MAC_LEN, mac, xaeadOpen, xaeadSeal } from './crypto.ts';

const enc = new TextEncoder();

function mac1Key(staticPublic: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_MAC1), staticPublic);
}
function cookieKey(staticPublic: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_COOKIE), staticPublic);
}

/** Offsets of mac1 and mac2 in a handshake message: the last 32 bytes. */
function macOffsets(message: Uint8Array): { m1: number; m2: number } {
  return { m1: message.length - 2 * MAC_LEN, m2: message.length - MAC_LEN };
}

export enum MacVerdict {
  Invalid = 0,
  Mac1Only = 1,
  Mac1AndMac2 = 2,
}

/** Responder side: validates MACs on received handshake messages and issues cookie replies. */
export class CookieChecker {
  private readonly mac1Key: Uint8Array;
  private readonly cookieEncryptionKey: Uint8Array;
  private secret = new Uint8Array(32);
  private secretSetAt = Number.NEGATIVE_INFINITY;

  constructor(
    staticPublic: Uint8Array,
    private readonly refreshMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.mac1Key = mac1Key(staticPublic);
    this.cookieEncryptionKey = cookieKey(staticPublic);
  }

  /** source is the sender's address bytes (IP ‖ port), the same form cookies are bound to. */
  check(message: Uint8Array, source: Uint8Array): MacVerdict {
    const { m1, m2 } = macOffsets(message);
    const expected1 = mac(this.mac1Key, message.subarray(0, m1));
    if (!equalBytes(expected1, message.subarray(m1, m2))) return MacVerdict.Invalid;
    if (this.now() - this.secretSetAt > this.refreshMs) return MacVerdict.Mac1Only;
    const cookie = mac(this.secret, source);
    const expected2 = mac(cookie, message.subarray(0, m2));
    return equalBytes(expected2, message.subarray(m2)) ? MacVerdict.Mac1AndMac2 : MacVerdict.Mac1Only;
  }

  /** Builds a cookie reply to a handshake message whose mac1 was valid. */
  createReply(message: Uint8Array, senderIndex: number, source: Uint8Array): Uint8Array {
    if (this.now() - this.secretSetAt > this.refreshMs) {
      this.secret = new Uint8Array(randomBytes(32));
      this.secretSetAt = this.now();
    }
    const { m1, m2 } = macOffsets(message);
    const cookie = mac(this.secret, source);
    const nonce = new Uint8Array(randomBytes(24));
    const sealed = xaeadSeal(this.cookieEncryptionKey, nonce, cookie, message.subarray(m1, m2));
    const reply = new Uint8Array(COOKIE_REPLY_SIZE);
    const view = new DataView(reply.buffer);
    view.setUint32(0, MessageType.CookieReply, true);
    view.setUint32(4, senderIndex, true);
    reply.set(nonce, 8);
    reply.set(sealed, 32);
    return reply;
  }
}

/** Initiator side, one per peer: adds MACs to what we send and keeps the cookie the peer gave us. */
export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieDecryptionKey: Uint8Array;
  private cookie: Uint8Array | undefined;
  private cookieSetAt = 0;
  private lastMac1: Uint8Array | undefined;

  constructor(
    peerStaticPublic: Uint8Array,
    private readonly refreshMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.mac1Key = mac1Key(peerStaticPublic);
    this.cookieDecryptionKey = cookieKey(peerStaticPublic);
  }

  /** Fills mac1 and (when a fresh cookie is held) mac2 in place. */
  addMacs(message: Uint8Array): void {
    const { m1, m2 } = macOffsets(message);
    const mac1 = mac(this.mac1Key, message.subarray(0, m1));
    message.set(mac1, m1);
    this.lastMac1 = mac1;
    if (this.cookie && this.now() - this.cookieSetAt <= this.refreshMs) {
      message.set(mac(this.cookie, message.subarray(0, m2)), m2);
    } else {
      message.fill(0, m2);
    }
  }

  /** Accepts a cookie reply; false when it does not decrypt against the last mac1 we sent. */
  consumeReply(reply: Uint8Array): boolean {
    if (!this.lastMac1 || reply.length !== COOKIE_REPLY_SIZE) return false;
    try {
      this.cookie = xaeadOpen(this.cookieDecryptionKey, reply.subarray(8, 32), reply.subarray(32), this.lastMac1);
    } catch {
      return false;
    }
    this.cookieSetAt = this.now();
    return true;
  }
}
