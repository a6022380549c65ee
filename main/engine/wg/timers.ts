// The per-peer timers of the whitepaper §6. The send and receive paths report events through the named hooks
// below (wireguard-go's timers.go names them alike), which only write deadlines; one periodic tick per device
// fires what is due.
import type { Device } from './device.ts';
import type { Peer } from './peer.ts';
import { initiateHandshake, sendKeepalive } from './send.ts';

export const TICK_MS = 100;

/** A data packet (not a keepalive) went out: expect an answer before keepalive + rekey timeout. */
export function timersDataSent(dev: Device, peer: Peer, now: number): void {
  if (peer.newHandshakeAt === undefined) {
    peer.newHandshakeAt = now + dev.timers.keepaliveTimeout + dev.timers.rekeyTimeout + dev.jitter();
  }
}

/** A data packet came in: answer with a keepalive unless we send something first. */
export function timersDataReceived(dev: Device, peer: Peer, now: number): void {
  if (peer.keepaliveAt === undefined) peer.keepaliveAt = now + dev.timers.keepaliveTimeout;
  else peer.keepaliveAgain = true;
}

/** Anything authenticated went out (data, keepalive, handshake): a pending keepalive is no longer needed. */
export function timersAnyAuthenticatedPacketSent(peer: Peer): void {
  peer.keepaliveAt = undefined;
}

/** Anything authenticated came in: the peer is alive, no new handshake for want of an answer. */
export function timersAnyAuthenticatedPacketReceived(peer: Peer): void {
  peer.newHandshakeAt = undefined;
}

/** Anything authenticated went either way: the persistent keepalive counts from now. */
export function timersAnyAuthenticatedPacketTraversal(peer: Peer, now: number): void {
  peer.lastAuthenticatedTraversal = now;
}

/** An initiation went out: retransmit it if no response comes within rekey timeout. */
export function timersHandshakeInitiated(dev: Device, peer: Peer, now: number): void {
  peer.retransmitAt = now + dev.timers.rekeyTimeout + dev.jitter();
}

/** A handshake finished (response consumed, or first data on the responder's new keypair). */
export function timersHandshakeComplete(peer: Peer): void {
  peer.retransmitAt = undefined;
  peer.handshakeAttempts = 0;
  peer.sentLastMinuteHandshake = false;
  peer.lastHandshakeWall = Date.now();
}

/** New session keys exist: erase every key of this peer after three reject-after times without a new one. */
export function timersSessionDerived(dev: Device, peer: Peer, now: number): void {
  peer.zeroKeysAt = now + 3 * dev.timers.rejectAfterTime;
}

export function tickTimers(dev: Device): void {
  const now = dev.now();
  const t = dev.timers;
  const maxAttempts = Math.floor(t.rekeyAttemptTime / t.rekeyTimeout);
  for (const peer of dev.peers.values()) {
    if (peer.retransmitAt !== undefined && now >= peer.retransmitAt) {
      peer.retransmitAt = undefined;
      if (peer.handshakeAttempts >= maxAttempts) {
        // Give up: drop what waited for the session and stop trying until new traffic asks again.
        peer.staged = [];
        peer.keepaliveAt = undefined;
        peer.newHandshakeAt = undefined;
        peer.handshakeAttempts = 0;
        dev.dropHandshake(peer);
        if (peer.zeroKeysAt === undefined) timersSessionDerived(dev, peer, now);
        dev.emit({ kind: 'handshakeGiveUp', peer: peer.publicKeyB64 });
      } else {
        peer.handshakeAttempts++;
        initiateHandshake(dev, peer, true);
      }
    }
    if (peer.keepaliveAt !== undefined && now >= peer.keepaliveAt) {
      peer.keepaliveAt = undefined;
      sendKeepalive(dev, peer);
      if (peer.keepaliveAgain) {
        peer.keepaliveAgain = false;
        peer.keepaliveAt = now + t.keepaliveTimeout;
      }
    }
    if (peer.newHandshakeAt !== undefined && now >= peer.newHandshakeAt) {
      // We sent data and heard nothing back for 15 s: the session may be dead on the other side.
      peer.newHandshakeAt = undefined;
      initiateHandshake(dev, peer, false);
    }
    if (peer.zeroKeysAt !== undefined && now >= peer.zeroKeysAt) {
      peer.zeroKeysAt = undefined;
      dev.wipeSessions(peer);
    }
    if (peer.persistentKeepaliveMs > 0 && now - peer.lastAuthenticatedTraversal >= peer.persistentKeepaliveMs) {
      sendKeepalive(dev, peer);
    }
  }
  dev.rateLimiter.sweep(now);
  dev.io?.flush();
}
