// The per-peer timers of the whitepaper §6, evaluated as deadlines by one periodic tick per device.
import type { Device } from './device.ts';

export const TICK_MS = 100;

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
        if (peer.zeroKeysAt === undefined) peer.zeroKeysAt = now + 3 * t.rejectAfterTime;
        dev.emit({ kind: 'handshakeGiveUp', peer: peer.publicKeyB64 });
      } else {
        peer.handshakeAttempts++;
        dev.initiateHandshake(peer, true);
      }
    }
    if (peer.keepaliveAt !== undefined && now >= peer.keepaliveAt) {
      peer.keepaliveAt = undefined;
      dev.sendKeepalive(peer);
      if (peer.keepaliveAgain) {
        peer.keepaliveAgain = false;
        peer.keepaliveAt = now + t.keepaliveTimeout;
      }
    }
    if (peer.newHandshakeAt !== undefined && now >= peer.newHandshakeAt) {
      // We sent data and heard nothing back for 15 s: the session may be dead on the other side.
      peer.newHandshakeAt = undefined;
      dev.initiateHandshake(peer, false);
    }
    if (peer.zeroKeysAt !== undefined && now >= peer.zeroKeysAt) {
      peer.zeroKeysAt = undefined;
      dev.wipeSessions(peer);
    }
    if (peer.persistentKeepaliveMs > 0 && now - peer.lastAuthenticatedTraversal >= peer.persistentKeepaliveMs) {
      dev.sendKeepalive(peer);
    }
  }
  dev.rateLimiter.sweep(now);
  dev.io?.flush();
}
