// Per-peer state: identity, the handshake in flight, the three keypair slots, timer deadlines and stats.
// Timers are deadlines checked by the device's tick (timers.ts), so the hot path only writes numbers.
import { CookieGenerator } from './cookie.ts';
import { dh } from './crypto.ts';
import type { PeerEndpoint } from './endpoint.ts';
import type { InitiatorState } from './handshake.ts';
import type { Keypair } from './keypair.ts';

/** Most packets held per peer while a handshake is under way (wireguard-go QueueStagedSize). */
export const MAX_STAGED = 128;

export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: PeerEndpoint;
  allowedIPs: Array<{ address: Uint8Array; bits: number }>;
  /** Seconds; 0 or absent = off. */
  persistentKeepalive?: number;
}

export type HandshakeState = { kind: 'none' } | { kind: 'initiationSent'; state: InitiatorState };

export class Peer {
  readonly publicKey: Uint8Array;
  readonly publicKeyB64: string;
  presharedKey: Uint8Array;
  endpoint: PeerEndpoint | undefined;
  persistentKeepaliveMs: number;
  readonly staticShared: Uint8Array;
  readonly cookies: CookieGenerator;

  handshake: HandshakeState = { kind: 'none' };
  current: Keypair | undefined;
  previous: Keypair | undefined;
  next: Keypair | undefined;
  /** Largest TAI64N accepted from this peer, and when (monotonic ms), against replayed initiations. */
  lastTimestamp: Uint8Array = new Uint8Array(12);
  lastInitiationConsumed = Number.NEGATIVE_INFINITY;

  staged: Uint8Array[] = [];

  // Timer state (monotonic ms; undefined = not armed).
  lastHandshakeSent = Number.NEGATIVE_INFINITY;
  /** Extra random delay (0 to REKEY_TIMEOUT jitter) on the initiation rate limit, drawn per handshake sent. */
  handshakeJitter = 0;
  handshakeAttempts = 0;
  retransmitAt: number | undefined;
  keepaliveAt: number | undefined;
  keepaliveAgain = false;
  newHandshakeAt: number | undefined;
  zeroKeysAt: number | undefined;
  lastAuthenticatedTraversal = 0;
  sentLastMinuteHandshake = false;

  // Stats.
  rxBytes = 0;
  txBytes = 0;
  /** Wall-clock ms of the last completed handshake; 0 = never. */
  lastHandshakeWall = 0;

  constructor(localStaticPrivate: Uint8Array, cfg: PeerConfig, cookieRefreshMs: number, now: () => number) {
    this.publicKey = cfg.publicKey;
    this.publicKeyB64 = Buffer.from(cfg.publicKey).toString('base64');
    this.presharedKey = cfg.presharedKey ?? new Uint8Array(32);
    this.endpoint = cfg.endpoint;
    this.persistentKeepaliveMs = (cfg.persistentKeepalive ?? 0) * 1000;
    this.staticShared = dh(localStaticPrivate, cfg.publicKey);
    this.cookies = new CookieGenerator(cfg.publicKey, cookieRefreshMs, now);
  }

  /** Keeps a copy of a packet to send once a session exists; the oldest is dropped when full. */
  stage(packet: Uint8Array): void {
    if (this.staged.length >= MAX_STAGED) this.staged.shift();
    this.staged.push(Uint8Array.prototype.slice.call(packet));
  }

  /** Every keypair this peer holds, for index-table cleanup. */
  keypairs(): Keypair[] {
    return [this.current, this.previous, this.next].filter((k): k is Keypair => k !== undefined);
  }
}
