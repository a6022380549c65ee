// The Noise_IKpsk2 handshake of WireGuard (whitepaper §5.4.2–5.4.5), as pure functions over explicit
// state: no I/O, no timers, no peer table. MACs are added by cookie.ts; the device wires it together.
import { CONSTRUCTION, IDENTIFIER, INITIATION_SIZE, MessageType, RESPONSE_SIZE } from './constants.ts';
import { aeadOpen, aeadSeal, dh, generateKeyPair, hash, type KeyPair, kdf } from './crypto.ts';

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);
export const ZERO_PSK = new Uint8Array(32);

/** Noise chaining key and hash before any message, for a given prologue. */
export function initialChainAndHash(prologue: Uint8Array): { chainKey: Uint8Array; hash: Uint8Array } {
  const chainKey = hash(enc.encode(CONSTRUCTION));
  return { chainKey, hash: hash(chainKey, prologue) };
}

export const WIREGUARD_PROLOGUE = enc.encode(IDENTIFIER);

export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
}

/** State the initiator keeps between sending message 1 and consuming message 2. */
export interface InitiatorState {
  chainKey: Uint8Array;
  hash: Uint8Array;
  ephemeral: KeyPair;
  localIndex: number;
}

/** What a responder learns from message 1. */
export interface ConsumedInitiation {
  chainKey: Uint8Array;
  hash: Uint8Array;
  remoteEphemeral: Uint8Array;
  remoteStatic: Uint8Array;
  remoteIndex: number;
  timestamp: Uint8Array;
}

export interface SessionKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
  /** Final handshake hash (the Noise channel binding); only tests look at it. */
  hash: Uint8Array;
}

export interface Identity {
  staticPrivate: Uint8Array;
  staticPublic: Uint8Array;
  prologue?: Uint8Array;
}

export interface InitiationOptions {
  remoteStatic: Uint8Array;
  /** Precomputed DH(Si_priv, Sr_pub); computed when absent. */
  staticShared?: Uint8Array;
  localIndex: number;
  payload: Uint8Array;
  ephemeral?: KeyPair;
}

/**
 * Builds message 1 without MACs: a 148-byte buffer with mac1/mac2 zero. Also returns the state to keep.
 * The payload is the TAI64N timestamp in WireGuard (12 bytes); tests vary it for the Noise vector.
 */
export function createInitiation(id: Identity, o: InitiationOptions): { message: Uint8Array; state: InitiatorState } {
  const init = initialChainAndHash(id.prologue ?? WIREGUARD_PROLOGUE);
  let c = init.chainKey;
  let h = hash(init.hash, o.remoteStatic);
  const e = o.ephemeral ?? generateKeyPair();
  [c] = kdf(1, c, e.publicKey);
  h = hash(h, e.publicKey);
  let k: Uint8Array;
  [c, k] = kdf(2, c, dh(e.privateKey, o.remoteStatic));
  const encStatic = aeadSeal(k, 0n, id.staticPublic, h);
  h = hash(h, encStatic);
  [c, k] = kdf(2, c, o.staticShared ?? dh(id.staticPrivate, o.remoteStatic));
  const encPayload = aeadSeal(k, 0n, o.payload, h);
  h = hash(h, encPayload);

  const message = new Uint8Array(INITIATION_SIZE - 12 + o.payload.length);
  const view = new DataView(message.buffer);
  view.setUint32(0, MessageType.Initiation, true);
  view.setUint32(4, o.localIndex, true);
  message.set(e.publicKey, 8);
  message.set(encStatic, 40);
  message.set(encPayload, 88);
  return { message, state: { chainKey: c, hash: h, ephemeral: e, localIndex: o.localIndex } };
}

/**
 * Consumes message 1 (MACs already checked). lookupStaticShared maps the decrypted initiator key to
 * DH(Sr_priv, Si_pub), or returns undefined for an unknown peer (→ HandshakeError).
 */
export function consumeInitiation(
  id: Identity,
  message: Uint8Array,
  lookupStaticShared: (remoteStatic: Uint8Array) => Uint8Array | undefined,
  payloadLength = 12,
): ConsumedInitiation {
  if (message.length !== INITIATION_SIZE - 12 + payloadLength)
    throw new HandshakeError('initiation has the wrong size');
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const init = initialChainAndHash(id.prologue ?? WIREGUARD_PROLOGUE);
  let c = init.chainKey;
  let h = hash(init.hash, id.staticPublic);
  const remoteEphemeral = message.slice(8, 40);
  [c] = kdf(1, c, remoteEphemeral);
  h = hash(h, remoteEphemeral);
  let k: Uint8Array;
  [c, k] = kdf(2, c, dh(id.staticPrivate, remoteEphemeral));
  const encStatic = message.subarray(40, 88);
  let remoteStatic: Uint8Array;
  try {
    remoteStatic = aeadOpen(k, 0n, encStatic, h);
  } catch {
    throw new HandshakeError('initiation static key does not decrypt');
  }
  h = hash(h, encStatic);
  const staticShared = lookupStaticShared(remoteStatic);
  if (!staticShared) throw new HandshakeError('initiation from an unknown peer');
  [c, k] = kdf(2, c, staticShared);
  const encPayload = message.subarray(88, 88 + payloadLength + 16);
  let timestamp: Uint8Array;
  try {
    timestamp = aeadOpen(k, 0n, encPayload, h);
  } catch {
    throw new HandshakeError('initiation timestamp does not decrypt');
  }
  h = hash(h, encPayload);
  return {
    chainKey: c,
    hash: h,
    remoteEphemeral,
    remoteStatic: new Uint8Array(remoteStatic),
    remoteIndex: view.getUint32(4, true),
    timestamp: new Uint8Array(timestamp),
  };
}

export interface ResponseOptions {
  localIndex: number;
  psk: Uint8Array;
  payload?: Uint8Array;
  ephemeral?: KeyPair;
}

/** Builds message 2 (MACs zero) and derives the responder's session keys. */
export function createResponse(
  consumed: ConsumedInitiation,
  o: ResponseOptions,
): { message: Uint8Array; keys: SessionKeys } {
  const payload = o.payload ?? EMPTY;
  const e = o.ephemeral ?? generateKeyPair();
  let h = hash(consumed.hash, e.publicKey);
  let [c] = kdf(1, consumed.chainKey, e.publicKey);
  [c] = kdf(1, c, dh(e.privateKey, consumed.remoteEphemeral));
  [c] = kdf(1, c, dh(e.privateKey, consumed.remoteStatic));
  const [c2, tau, k] = kdf(3, c, o.psk);
  c = c2;
  h = hash(h, tau);
  const encPayload = aeadSeal(k, 0n, payload, h);
  h = hash(h, encPayload);

  const message = new Uint8Array(RESPONSE_SIZE + payload.length);
  const view = new DataView(message.buffer);
  view.setUint32(0, MessageType.Response, true);
  view.setUint32(4, o.localIndex, true);
  view.setUint32(8, consumed.remoteIndex, true);
  message.set(e.publicKey, 12);
  message.set(encPayload, 44);
  const [receiveKey, sendKey] = kdf(2, c, EMPTY);
  return { message, keys: { sendKey, receiveKey, hash: h } };
}

/** Consumes message 2 for the initiator state it answers and derives the initiator's session keys. */
export function consumeResponse(
  id: Identity,
  state: InitiatorState,
  message: Uint8Array,
  psk: Uint8Array,
  payloadLength = 0,
): SessionKeys & { payload: Uint8Array } {
  if (message.length !== RESPONSE_SIZE + payloadLength) throw new HandshakeError('response has the wrong size');
  const remoteEphemeral = message.subarray(12, 44);
  let h = hash(state.hash, remoteEphemeral);
  let [c] = kdf(1, state.chainKey, remoteEphemeral);
  [c] = kdf(1, c, dh(state.ephemeral.privateKey, remoteEphemeral));
  [c] = kdf(1, c, dh(id.staticPrivate, remoteEphemeral));
  const [c2, tau, k] = kdf(3, c, psk);
  c = c2;
  h = hash(h, tau);
  const encPayload = message.subarray(44, 44 + payloadLength + 16);
  let payload: Uint8Array;
  try {
    payload = aeadOpen(k, 0n, encPayload, h);
  } catch {
    throw new HandshakeError('response does not authenticate');
  }
  h = hash(h, encPayload);
  const [sendKey, receiveKey] = kdf(2, c, EMPTY);
  return { sendKey, receiveKey, hash: h, payload };
}
