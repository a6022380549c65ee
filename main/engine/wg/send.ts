// Outbound: one IP packet from the TUN to a sealed transport message on the peer's endpoint, and the handshake
// initiations and keepalives the timers ask for. The mirror of receive.ts; both act on a Device.
import { DST_OFFSET, ipVersion } from '../packet/ip.ts';
import { REKEY_AFTER_MESSAGES } from './constants.ts';
import type { Device, DeviceIO } from './device.ts';
import { createInitiation } from './handshake.ts';
import { COUNTER_LIMIT, type Keypair, MessageSlot } from './keypair.ts';
import type { Peer } from './peer.ts';
import { tai64n } from './tai64n.ts';
import {
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersDataSent,
  timersHandshakeInitiated,
} from './timers.ts';

/** Transport messages in flight between flushes when the IO releases them on flush (see DeviceIO). */
const SEND_SLOTS = 128;
/** REKEY_AFTER_MESSAGES as a number, once: not a BigInt conversion per packet. */
const REKEY_AFTER = Number(REKEY_AFTER_MESSAGES);

/**
 * Reusable message buffers for an IO that is done with each message once flush() returns: a packet is sealed into
 * the next slot, and the IO is flushed before a slot comes round again. Nothing is allocated per packet.
 */
export class SendRing {
  private readonly slots: MessageSlot[] = [];
  private next = 0;
  private lent = 0;

  constructor(mtu: number) {
    for (let i = 0; i < SEND_SLOTS; i++) this.slots.push(new MessageSlot(mtu));
  }

  seal(kp: Keypair, packet: Uint8Array, mtu: number, io: DeviceIO): Uint8Array {
    if (this.lent === this.slots.length) {
      io.flush();
      this.lent = 0;
    }
    const msg = kp.sealInto(packet, mtu, this.slots[this.next]);
    if (msg === undefined) return kp.seal(packet, mtu); // bigger than the MTU: not what the slots hold
    this.next = (this.next + 1) % this.slots.length;
    this.lent++;
    return msg;
  }
}

/** One IP packet read from the TUN. The buffer may be reused by the caller after return. */
export function sendPacket(dev: Device, packet: Uint8Array): void {
  const v = ipVersion(packet);
  if (v === 0) {
    dev.drops.malformedInner++;
    return;
  }
  const peer = dev.routes.lookup(packet, DST_OFFSET[v], v === 4 ? 4 : 16);
  if (!peer) {
    dev.drops.noRoute++;
    return;
  }
  const kp = peer.current;
  const now = dev.now(); // one clock read per packet, for the session check and the timers
  if (!kp || !usableForSending(dev, kp, now) || peer.staged.length > 0) {
    peer.stage(packet);
    sendStaged(dev, peer);
    return;
  }
  sendTransport(dev, peer, kp, packet, now);
}

export function usableForSending(dev: Device, kp: Keypair, now = dev.now()): boolean {
  return now - kp.created < dev.timers.rejectAfterTime && kp.sendCounter < COUNTER_LIMIT;
}

/** Sends what is staged if a session allows it, else starts a handshake. */
export function sendStaged(dev: Device, peer: Peer): void {
  const kp = peer.current;
  if (!kp || !usableForSending(dev, kp)) {
    initiateHandshake(dev, peer, false);
    return;
  }
  const staged = peer.staged;
  peer.staged = [];
  for (const p of staged) sendTransport(dev, peer, kp, p);
}

export function sendKeepalive(dev: Device, peer: Peer): void {
  if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
  sendStaged(dev, peer);
}

export function sendTransport(dev: Device, peer: Peer, kp: Keypair, packet: Uint8Array, now = dev.now()): void {
  const io = dev.io;
  if (!peer.endpoint || !io) {
    dev.drops.noEndpoint++;
    return;
  }
  const msg = dev.ring ? dev.ring.seal(kp, packet, dev.mtu, io) : kp.seal(packet, dev.mtu);
  io.sendDatagram(msg, peer.endpoint);
  peer.txBytes += msg.length;
  timersAnyAuthenticatedPacketSent(peer);
  timersAnyAuthenticatedPacketTraversal(peer, now);
  if (packet.length > 0) timersDataSent(dev, peer, now);
  if (kp.sendCounter > REKEY_AFTER || (kp.isInitiator && now - kp.created > dev.timers.rekeyAfterTime)) {
    initiateHandshake(dev, peer, false);
  }
}

/** Sends a handshake initiation unless one went out less than REKEY_TIMEOUT ago (retries bypass that). */
export function initiateHandshake(dev: Device, peer: Peer, isRetry: boolean): void {
  const now = dev.now();
  // The rate limit carries the same random jitter as retries: two peers whose traffic is in step would
  // otherwise initiate at the same instant after each crossing, reject each other's responses, and repeat.
  if (!isRetry && now - peer.lastHandshakeSent < dev.timers.rekeyTimeout + peer.handshakeJitter) return;
  if (!peer.endpoint || !dev.io) {
    dev.drops.noEndpoint++;
    return;
  }
  dev.dropHandshake(peer);
  const localIndex = dev.newIndex(peer);
  const { message, state } = createInitiation(dev.identity, {
    remoteStatic: peer.publicKey,
    staticShared: peer.staticShared,
    localIndex,
    payload: tai64n(),
  });
  peer.cookies.addMacs(message);
  peer.handshake = { kind: 'initiationSent', state };
  peer.lastHandshakeSent = now;
  peer.handshakeJitter = dev.jitter();
  timersHandshakeInitiated(dev, peer, now);
  sendHandshakeMessage(dev, peer, message);
}

export function sendHandshakeMessage(dev: Device, peer: Peer, message: Uint8Array): void {
  if (!peer.endpoint || !dev.io) return;
  dev.io.sendDatagram(message, peer.endpoint);
  peer.txBytes += message.length;
  const now = dev.now();
  timersAnyAuthenticatedPacketSent(peer);
  timersAnyAuthenticatedPacketTraversal(peer, now);
}
