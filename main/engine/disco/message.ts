// Disco wire format (docs/protocol/datapath.md §2.1–§2.3): the sealed envelope and the Ping/Pong/CallMeMaybe messages.
// Parsers take bytes and return values or throw DiscoError; they do no I/O and no crypto.
import { AddressError, formatAddress, parseAddress } from '../packet/ip.ts';

/** "TS💬" */
export const DISCO_MAGIC: Uint8Array = Uint8Array.of(0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac);
export const DISCO_KEY_LEN = 32;
export const DISCO_NONCE_LEN = 24;
/** Magic + sender key: enough to classify a datagram as disco (magicsock's demux test). */
export const DISCO_HEADER_LEN = DISCO_MAGIC.length + DISCO_KEY_LEN;
/** Offset of the box: magic + sender key + nonce. */
export const DISCO_BOX_OFFSET = DISCO_HEADER_LEN + DISCO_NONCE_LEN;
/** Smallest envelope that can hold a box (its 16-byte tag): 78 bytes. */
export const DISCO_MIN_ENVELOPE = DISCO_BOX_OFFSET + 16;

export const MessageType = {
  Ping: 0x01,
  Pong: 0x02,
  CallMeMaybe: 0x03,
  BindUDPRelayEndpoint: 0x04,
  BindUDPRelayEndpointChallenge: 0x05,
  BindUDPRelayEndpointAnswer: 0x06,
  CallMeMaybeVia: 0x07,
  AllocateUDPRelayEndpointRequest: 0x08,
  AllocateUDPRelayEndpointResponse: 0x09,
} as const;

export const TXID_LEN = 12;
const ENDPOINT_LEN = 18; // 16-byte address + 2-byte port
const PONG_PAYLOAD_LEN = TXID_LEN + ENDPOINT_LEN;

export type DiscoErrorCode = 'short' | 'unknown-type' | 'unsupported-type' | 'bad-field';

export class DiscoError extends Error {
  override readonly name = 'DiscoError';
  constructor(
    readonly code: DiscoErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** An IP:port; IPv4 addresses are plain dotted quads (un-mapped from ::ffff:a.b.c.d on the wire). */
export interface DiscoEndpoint {
  ip: string;
  port: number;
}

export interface PingMessage {
  type: 'ping';
  txId: Uint8Array;
  /** The sender's node (WireGuard) public key; null from nodes older than ~1.16. */
  nodeKey: Uint8Array | null;
  /** Zero bytes after the fields (path-MTU probing). */
  padding: number;
}

export interface PongMessage {
  type: 'pong';
  txId: Uint8Array;
  /** The ping's source as the responder saw it. */
  src: DiscoEndpoint;
}

export interface CallMeMaybeMessage {
  type: 'callMeMaybe';
  endpoints: DiscoEndpoint[];
}

export type DiscoMessage = PingMessage | PongMessage | CallMeMaybeMessage;

/** Whether a datagram is disco (magic + room for the sender key); anything else goes to WireGuard. */
export function looksLikeDisco(pkt: Uint8Array): boolean {
  if (pkt.length < DISCO_HEADER_LEN) return false;
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (pkt[i] !== DISCO_MAGIC[i]) return false;
  return true;
}

/** The sender's disco public key (a view into pkt), or null when pkt is not disco. */
export function discoSender(pkt: Uint8Array): Uint8Array | null {
  return looksLikeDisco(pkt) ? pkt.subarray(DISCO_MAGIC.length, DISCO_HEADER_LEN) : null;
}

/** Assembles magic ‖ senderPub ‖ nonce ‖ box. */
export function buildEnvelope(senderPub: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array {
  if (senderPub.length !== DISCO_KEY_LEN) throw new DiscoError('bad-field', 'sender key must be 32 bytes');
  if (nonce.length !== DISCO_NONCE_LEN) throw new DiscoError('bad-field', 'nonce must be 24 bytes');
  const out = new Uint8Array(DISCO_BOX_OFFSET + box.length);
  out.set(DISCO_MAGIC, 0);
  out.set(senderPub, DISCO_MAGIC.length);
  out.set(nonce, DISCO_HEADER_LEN);
  out.set(box, DISCO_BOX_OFFSET);
  return out;
}

/** Splits an envelope into views of its nonce and box; throws DiscoError when it is not one. */
export function splitEnvelope(pkt: Uint8Array): { sender: Uint8Array; nonce: Uint8Array; box: Uint8Array } {
  if (!looksLikeDisco(pkt)) throw new DiscoError('bad-field', 'not a disco envelope');
  if (pkt.length < DISCO_MIN_ENVELOPE) throw new DiscoError('short', `disco envelope of ${pkt.length} bytes`);
  return {
    sender: pkt.subarray(DISCO_MAGIC.length, DISCO_HEADER_LEN),
    nonce: pkt.subarray(DISCO_HEADER_LEN, DISCO_BOX_OFFSET),
    box: pkt.subarray(DISCO_BOX_OFFSET),
  };
}

function readEndpoint(b: Uint8Array, off: number): DiscoEndpoint {
  const ip = b.subarray(off, off + 16);
  let mapped = ip[10] === 0xff && ip[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = ip[i] === 0;
  return {
    ip: formatAddress(mapped ? ip.slice(12, 16) : ip.slice()),
    port: (b[off + 16] << 8) | b[off + 17],
  };
}

function writeEndpoint(out: Uint8Array, off: number, ep: DiscoEndpoint): void {
  let addr: Uint8Array;
  try {
    addr = parseAddress(ep.ip);
  } catch (err) {
    if (err instanceof AddressError) throw new DiscoError('bad-field', err.message);
    throw err;
  }
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 0xffff) {
    throw new DiscoError('bad-field', `bad port ${ep.port}`);
  }
  if (addr.length === 4) {
    out[off + 10] = 0xff;
    out[off + 11] = 0xff;
    out.set(addr, off + 12);
  } else {
    out.set(addr, off);
  }
  out[off + 16] = ep.port >> 8;
  out[off + 17] = ep.port & 0xff;
}

/** Parses an opened (decrypted) inner message. Unknown or relay types throw DiscoError: drop silently. */
export function parseMessage(b: Uint8Array): DiscoMessage {
  if (b.length < 2) throw new DiscoError('short', 'disco message shorter than its header');
  const type = b[0];
  const version = b[1];
  const p = b.subarray(2);
  switch (type) {
    case MessageType.Ping: {
      if (p.length < TXID_LEN) throw new DiscoError('short', `ping payload of ${p.length} bytes`);
      const hasKey = p.length >= TXID_LEN + DISCO_KEY_LEN;
      return {
        type: 'ping',
        txId: p.slice(0, TXID_LEN),
        nodeKey: hasKey ? p.slice(TXID_LEN, TXID_LEN + DISCO_KEY_LEN) : null,
        padding: p.length - TXID_LEN - (hasKey ? DISCO_KEY_LEN : 0),
      };
    }
    case MessageType.Pong:
      if (p.length < PONG_PAYLOAD_LEN) throw new DiscoError('short', `pong payload of ${p.length} bytes`);
      return { type: 'pong', txId: p.slice(0, TXID_LEN), src: readEndpoint(p, TXID_LEN) };
    case MessageType.CallMeMaybe: {
      // A bad length or a non-zero version yields an empty list, not an error (as tailscaled does).
      const endpoints: DiscoEndpoint[] = [];
      if (version === 0 && p.length % ENDPOINT_LEN === 0) {
        for (let off = 0; off < p.length; off += ENDPOINT_LEN) endpoints.push(readEndpoint(p, off));
      }
      return { type: 'callMeMaybe', endpoints };
    }
    default:
      if (type >= MessageType.BindUDPRelayEndpoint && type <= MessageType.AllocateUDPRelayEndpointResponse) {
        throw new DiscoError('unsupported-type', `peer-relay disco message 0x${type.toString(16)} not supported`);
      }
      throw new DiscoError('unknown-type', `unknown disco message type 0x${type.toString(16).padStart(2, '0')}`);
  }
}

function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** Serialises an inner message (version 0). */
export function buildMessage(m: DiscoMessage): Uint8Array {
  switch (m.type) {
    case 'ping': {
      if (m.txId.length !== TXID_LEN) throw new DiscoError('bad-field', 'TxID must be 12 bytes');
      const key = m.nodeKey && !isZero(m.nodeKey) ? m.nodeKey : null;
      if (key && key.length !== DISCO_KEY_LEN) throw new DiscoError('bad-field', 'node key must be 32 bytes');
      const padding = m.padding ?? 0;
      if (!Number.isInteger(padding) || padding < 0) throw new DiscoError('bad-field', `bad padding ${padding}`);
      const out = new Uint8Array(2 + TXID_LEN + (key ? DISCO_KEY_LEN : 0) + padding);
      out[0] = MessageType.Ping;
      out.set(m.txId, 2);
      if (key) out.set(key, 2 + TXID_LEN);
      return out;
    }
    case 'pong': {
      if (m.txId.length !== TXID_LEN) throw new DiscoError('bad-field', 'TxID must be 12 bytes');
      const out = new Uint8Array(2 + PONG_PAYLOAD_LEN);
      out[0] = MessageType.Pong;
      out.set(m.txId, 2);
      writeEndpoint(out, 2 + TXID_LEN, m.src);
      return out;
    }
    case 'callMeMaybe': {
      const out = new Uint8Array(2 + ENDPOINT_LEN * m.endpoints.length);
      out[0] = MessageType.CallMeMaybe;
      m.endpoints.forEach((ep, i) => {
        writeEndpoint(out, 2 + ENDPOINT_LEN * i, ep);
      });
      return out;
    }
  }
}
