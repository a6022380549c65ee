// Inbound: demultiplex one UDP datagram by message type and act on it. Nothing here throws on hostile
// input: every rejection is counted in device.drops and the datagram is dropped.
import { ipTotalLength, ipVersion, SRC_OFFSET } from '../packet/ip.ts';
import { COOKIE_REPLY_SIZE, INITIATION_SIZE, MessageType, RESPONSE_SIZE, TRANSPORT_MIN_SIZE } from './constants.ts';
import { MacVerdict } from './cookie.ts';
import type { Device } from './device.ts';
import { type PeerEndpoint, sameEndpoint } from './endpoint.ts';
import { consumeInitiation, consumeResponse, createResponse } from './handshake.ts';
import { COUNTER_LIMIT, Keypair, type MessageViews, readU32LE, transportCounter } from './keypair.ts';
import type { Peer } from './peer.ts';
import { initiateHandshake, sendHandshakeMessage, sendKeepalive, sendStaged } from './send.ts';
import { tai64nAfter } from './tai64n.ts';
import {
  timersAnyAuthenticatedPacketReceived,
  timersAnyAuthenticatedPacketTraversal,
  timersDataReceived,
} from './timers.ts';

/** `views`: the receiver's ready-made views of msg's slot (batch UDP), so opening it allocates nothing. */
export function receiveDatagram(dev: Device, msg: Uint8Array, from: PeerEndpoint, views?: MessageViews): void {
  if (msg.length < 4) {
    dev.drops.short++;
    return;
  }
  const type = readU32LE(msg, 0);
  switch (type) {
    case MessageType.Transport:
      if (msg.length < TRANSPORT_MIN_SIZE) dev.drops.badSize++;
      else receiveTransport(dev, msg, from, views);
      return;
    case MessageType.Initiation:
      if (msg.length !== INITIATION_SIZE) dev.drops.badSize++;
      else if (admitHandshake(dev, msg, from)) receiveInitiation(dev, msg, from);
      return;
    case MessageType.Response:
      if (msg.length !== RESPONSE_SIZE) dev.drops.badSize++;
      else if (admitHandshake(dev, msg, from)) receiveResponse(dev, msg, from);
      return;
    case MessageType.CookieReply:
      if (msg.length !== COOKIE_REPLY_SIZE) dev.drops.badSize++;
      else receiveCookieReply(dev, msg);
      return;
    default:
      dev.drops.badType++;
  }
}

/** MAC1 always; when under load, MAC2 (else answer with a cookie) and a per-source rate limit. */
function admitHandshake(dev: Device, msg: Uint8Array, from: PeerEndpoint): boolean {
  const now = dev.now();
  if (now - dev.handshakeWindowStart >= 1000) {
    dev.handshakeWindowStart = now;
    dev.handshakeWindowCount = 0;
  }
  if (++dev.handshakeWindowCount > dev.underLoadRate) dev.underLoadUntil = now + 1000;
  const source = from.macSource;
  const verdict = dev.cookieChecker.check(msg, source);
  if (verdict === MacVerdict.Invalid) {
    dev.drops.badMac1++;
    return false;
  }
  if (now >= dev.underLoadUntil) return true;
  if (verdict !== MacVerdict.Mac1AndMac2) {
    const reply = dev.cookieChecker.createReply(msg, readU32LE(msg, 4), source);
    dev.io?.sendDatagram(reply, from);
    dev.drops.cookieSent++;
    return false;
  }
  if (!dev.rateLimiter.allow(from.rateKey, now)) {
    dev.drops.rateLimited++;
    return false;
  }
  return true;
}

/** Plain WireGuard's roaming: the peer's endpoint follows its authenticated packets' source. */
function roam(dev: Device, peer: Peer, from: PeerEndpoint): void {
  if (!dev.roaming || sameEndpoint(peer.endpoint, from)) return;
  peer.endpoint = from;
  dev.emit({ kind: 'roamed', peer: peer.publicKeyB64, endpoint: from });
}

function receiveInitiation(dev: Device, msg: Uint8Array, from: PeerEndpoint): void {
  let peer: Peer | undefined;
  let consumed: ReturnType<typeof consumeInitiation>;
  try {
    consumed = consumeInitiation(dev.identity, msg, (pub) => {
      peer = dev.peerByStatic(pub);
      return peer?.staticShared;
    });
  } catch {
    if (peer === undefined) dev.drops.unknownPeer++;
    else dev.drops.badHandshake++;
    return;
  }
  if (!peer) return;
  const now = dev.now();
  if (!tai64nAfter(consumed.timestamp, peer.lastTimestamp)) {
    dev.drops.replayedInitiation++;
    return;
  }
  if (now - peer.lastInitiationConsumed < dev.timers.handshakeInitiationRate) {
    dev.drops.rateLimited++;
    return;
  }
  peer.lastTimestamp = consumed.timestamp;
  peer.lastInitiationConsumed = now;
  roam(dev, peer, from);
  peer.rxBytes += msg.length;
  timersAnyAuthenticatedPacketReceived(peer);
  timersAnyAuthenticatedPacketTraversal(peer, now);

  // Our own initiation, if one is in flight, stays valid: when both sides initiate at once and each consumes the
  // other's initiation first, a peer that (like wireguard-go) forgets its own leaves us only its response to
  // ours. Dropping ours too would leave both sides holding unconfirmed responder keypairs until the 5 s retry.
  const localIndex = dev.newIndex(peer);
  const { message, keys } = createResponse(consumed, { localIndex, psk: peer.presharedKey });
  peer.cookies.addMacs(message);
  dev.installSession(peer, new Keypair(keys.sendKey, keys.receiveKey, false, localIndex, consumed.remoteIndex, now));
  peer.lastHandshakeSent = now;
  peer.handshakeJitter = dev.jitter();
  sendHandshakeMessage(dev, peer, message);
  dev.io?.flush();
}

function receiveResponse(dev: Device, msg: Uint8Array, from: PeerEndpoint): void {
  const entry = dev.index.get(readU32LE(msg, 8));
  const peer = entry?.peer;
  if (!peer || entry.keypair || peer.handshake.kind !== 'initiationSent') {
    dev.drops.unknownIndex++;
    return;
  }
  const state = peer.handshake.state;
  let keys: ReturnType<typeof consumeResponse>;
  try {
    keys = consumeResponse(dev.identity, state, msg, peer.presharedKey);
  } catch {
    dev.drops.badHandshake++;
    return;
  }
  const now = dev.now();
  peer.handshake = { kind: 'none' };
  roam(dev, peer, from);
  peer.rxBytes += msg.length;
  timersAnyAuthenticatedPacketReceived(peer);
  timersAnyAuthenticatedPacketTraversal(peer, now);
  dev.installSession(peer, new Keypair(keys.sendKey, keys.receiveKey, true, state.localIndex, readU32LE(msg, 4), now));
  dev.handshakeComplete(peer, 'initiator');
  // Confirm the session to the responder at once: staged data if any, else a keepalive.
  sendKeepalive(dev, peer);
  dev.io?.flush();
}

function receiveCookieReply(dev: Device, msg: Uint8Array): void {
  const entry = dev.index.get(readU32LE(msg, 4));
  if (!entry) {
    dev.drops.unknownIndex++;
    return;
  }
  if (!entry.peer.cookies.consumeReply(msg)) dev.drops.badHandshake++;
}

function receiveTransport(dev: Device, msg: Uint8Array, from: PeerEndpoint, views: MessageViews | undefined): void {
  const entry = dev.index.get(readU32LE(msg, 4));
  const kp = entry?.keypair;
  if (!entry || !kp) {
    dev.drops.unknownIndex++;
    return;
  }
  const now = dev.now();
  const counter = transportCounter(msg);
  if (now - kp.created >= dev.timers.rejectAfterTime || counter >= COUNTER_LIMIT) {
    dev.drops.expiredKeypair++;
    return;
  }
  const plain = kp.open(msg, counter, views);
  if (!plain) {
    dev.drops.authFailed++;
    return;
  }
  if (!kp.replay.accept(counter, COUNTER_LIMIT)) {
    dev.drops.replay++;
    return;
  }
  const peer = entry.peer;
  roam(dev, peer, from);
  peer.rxBytes += msg.length;
  timersAnyAuthenticatedPacketReceived(peer);
  timersAnyAuthenticatedPacketTraversal(peer, now);
  if (kp === peer.next) {
    dev.deleteKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = kp;
    peer.next = undefined;
    dev.handshakeComplete(peer, 'responder');
    if (peer.staged.length > 0) sendStaged(dev, peer);
  }
  if (
    kp.isInitiator &&
    !peer.sentLastMinuteHandshake &&
    now - kp.created > dev.timers.rejectAfterTime - dev.timers.keepaliveTimeout - dev.timers.rekeyTimeout
  ) {
    peer.sentLastMinuteHandshake = true;
    initiateHandshake(dev, peer, false);
  }
  if (plain.length === 0) return; // keepalive
  const v = ipVersion(plain);
  const len = v === 0 ? -1 : ipTotalLength(plain, v);
  if (v === 0 || len < 0) {
    dev.drops.malformedInner++;
    return;
  }
  if (dev.routes.lookup(plain, SRC_OFFSET[v], v === 4 ? 4 : 16) !== peer) {
    dev.drops.notAllowedSource++;
    return;
  }
  timersDataReceived(dev, peer, now);
  dev.io?.writePacket(len === plain.length ? plain : unpadded(plain, len, views));
}

/** The IP packet without WireGuard's padding; with the slot's views, the view is kept for the next such length. */
function unpadded(plain: Uint8Array, len: number, views: MessageViews | undefined): Uint8Array {
  if (views === undefined || plain !== views.data) return plain.subarray(0, len);
  let inner = views.inner;
  if (inner === undefined || inner.length !== len) views.inner = inner = plain.subarray(0, len);
  return inner;
}
