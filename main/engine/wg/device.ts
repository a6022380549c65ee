// A WireGuard device: our static identity, the peers, the index table and the sessions. Packets go out through
// send.ts and come in through receive.ts; timers.ts keeps the deadlines. All three act on a Device.
import { performance } from 'node:perf_hooks';
import { AllowedIPs, type Prefix } from './allowedips.ts';
import { DEFAULT_TIMERS, UNDER_LOAD_QUEUE, type WgTimers } from './constants.ts';
import { CookieChecker } from './cookie.ts';
import { publicKeyOf, randomIndex } from './crypto.ts';
import type { PeerEndpoint } from './endpoint.ts';
import type { Identity } from './handshake.ts';
import type { Keypair } from './keypair.ts';
import { Peer, type PeerConfig } from './peer.ts';
import { RateLimiter } from './ratelimiter.ts';
import { SendRing } from './send.ts';
import { timersHandshakeComplete, timersSessionDerived } from './timers.ts';

/** Where the device's output goes: datagrams to the network, decrypted packets to the TUN. */
export interface DeviceIO {
  /** `to` is a peer's endpoint, or the source of a handshake being answered with a cookie reply. */
  sendDatagram(message: Uint8Array, to: PeerEndpoint): void;
  writePacket(packet: Uint8Array): void;
  /** Called at the end of each batch so an implementation may buffer and send in bulk. */
  flush(): void;
  /**
   * True when sendDatagram is done with each message by the time the next flush() returns (it sent or copied
   * it). The device then seals transport messages into a ring of reusable slots instead of a fresh buffer per
   * packet, and calls flush() itself before a slot comes round again.
   */
  readonly releasesOnFlush?: boolean;
}

export type DeviceEvent =
  | { kind: 'handshake'; peer: string; role: 'initiator' | 'responder'; endpoint: PeerEndpoint | undefined }
  | { kind: 'handshakeGiveUp'; peer: string }
  /** Only with roaming: an authenticated packet came from another address than the peer's endpoint. */
  | { kind: 'roamed'; peer: string; endpoint: PeerEndpoint };

/** Why inbound or outbound traffic was dropped; `wg show`-style stats print them. */
export interface DropCounters {
  short: number;
  badType: number;
  badSize: number;
  badMac1: number;
  cookieSent: number;
  rateLimited: number;
  unknownPeer: number;
  badHandshake: number;
  replayedInitiation: number;
  unknownIndex: number;
  expiredKeypair: number;
  authFailed: number;
  replay: number;
  malformedInner: number;
  notAllowedSource: number;
  noRoute: number;
  noEndpoint: number;
}

export interface DeviceOptions {
  privateKey: Uint8Array;
  mtu: number;
  /** Test-only: shorter timers. Production passes nothing and gets DEFAULT_TIMERS. */
  timers?: Partial<WgTimers>;
  /** Handshake messages per second above which the device requires cookies. */
  underLoadRate?: number;
  onEvent?: (e: DeviceEvent) => void;
  /**
   * Whether a peer's endpoint follows the source of its authenticated packets (default true, as in plain
   * WireGuard). False when the IO owns the paths (magicsock): the endpoint stays the object it was given.
   */
  roaming?: boolean;
}

export interface IndexEntry {
  peer: Peer;
  keypair: Keypair | undefined;
}

export class Device {
  readonly identity: Identity;
  readonly timers: WgTimers;
  readonly mtu: number;
  readonly peers = new Map<string, Peer>();
  readonly routes = new AllowedIPs<Peer>();
  readonly index = new Map<number, IndexEntry>();
  readonly cookieChecker: CookieChecker;
  readonly rateLimiter = new RateLimiter(20, 5);
  readonly drops: DropCounters = {
    short: 0,
    badType: 0,
    badSize: 0,
    badMac1: 0,
    cookieSent: 0,
    rateLimited: 0,
    unknownPeer: 0,
    badHandshake: 0,
    replayedInitiation: 0,
    unknownIndex: 0,
    expiredKeypair: 0,
    authFailed: 0,
    replay: 0,
    malformedInner: 0,
    notAllowedSource: 0,
    noRoute: 0,
    noEndpoint: 0,
  };
  readonly underLoadRate: number;
  handshakeWindowStart = 0;
  handshakeWindowCount = 0;
  underLoadUntil = Number.NEGATIVE_INFINITY;
  readonly roaming: boolean;
  io: DeviceIO | undefined;
  /** The send ring, made on attach() to an IO that releases each message on flush. */
  ring: SendRing | undefined;
  private readonly onEvent: (e: DeviceEvent) => void;

  constructor(o: DeviceOptions) {
    this.identity = { staticPrivate: o.privateKey, staticPublic: publicKeyOf(o.privateKey) };
    this.timers = { ...DEFAULT_TIMERS, ...o.timers };
    this.mtu = o.mtu;
    this.underLoadRate = o.underLoadRate ?? UNDER_LOAD_QUEUE;
    this.cookieChecker = new CookieChecker(this.identity.staticPublic, this.timers.cookieRefreshTime, () => this.now());
    this.onEvent = o.onEvent ?? (() => {});
    this.roaming = o.roaming ?? true;
  }

  /** Monotonic milliseconds. */
  now(): number {
    return performance.now();
  }

  emit(e: DeviceEvent): void {
    this.onEvent(e);
  }

  attach(io: DeviceIO): void {
    this.io = io;
    this.ring = io.releasesOnFlush ? new SendRing(this.mtu) : undefined;
  }

  setPeer(cfg: PeerConfig): Peer {
    const key = Buffer.from(cfg.publicKey).toString('base64');
    let peer = this.peers.get(key);
    if (!peer) {
      peer = new Peer(this.identity.staticPrivate, cfg, this.timers.cookieRefreshTime, () => this.now());
      this.peers.set(key, peer);
    } else {
      if (cfg.presharedKey) peer.presharedKey = cfg.presharedKey;
      if (cfg.endpoint) peer.endpoint = cfg.endpoint;
      peer.persistentKeepaliveMs = (cfg.persistentKeepalive ?? 0) * 1000;
      this.routes.removeValue(peer);
    }
    for (const p of cfg.allowedIPs) this.routes.insert(p as Prefix, peer);
    return peer;
  }

  removePeer(publicKey: Uint8Array): void {
    const key = Buffer.from(publicKey).toString('base64');
    const peer = this.peers.get(key);
    if (!peer) return;
    this.wipeSessions(peer);
    this.routes.removeValue(peer);
    this.peers.delete(key);
  }

  peerByStatic(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(Buffer.from(publicKey).toString('base64'));
  }

  newIndex(peer: Peer, keypair?: Keypair): number {
    for (let i = 0; i < 64; i++) {
      const idx = randomIndex();
      if (!this.index.has(idx)) {
        this.index.set(idx, { peer, keypair });
        return idx;
      }
    }
    throw new Error('no free session index');
  }

  jitter(): number {
    return Math.floor(Math.random() * this.timers.rekeyTimeoutJitterMax);
  }

  /** Forgets the handshake in flight and frees its index. */
  dropHandshake(peer: Peer): void {
    const h = peer.handshake;
    if (h.kind === 'initiationSent') this.index.delete(h.state.localIndex);
    peer.handshake = { kind: 'none' };
  }

  deleteKeypair(kp: Keypair | undefined): void {
    if (kp) this.index.delete(kp.localIndex);
  }

  /** Installs a new session in the slots as wireguard-go's BeginSymmetricSession does. */
  installSession(peer: Peer, kp: Keypair): void {
    this.index.set(kp.localIndex, { peer, keypair: kp });
    if (kp.isInitiator) {
      if (peer.next) {
        this.deleteKeypair(peer.previous);
        peer.previous = peer.next;
        peer.next = undefined;
        this.deleteKeypair(peer.current);
      } else {
        this.deleteKeypair(peer.previous);
        peer.previous = peer.current;
      }
      peer.current = kp;
    } else {
      this.deleteKeypair(peer.next);
      this.deleteKeypair(peer.previous);
      peer.previous = undefined;
      peer.next = kp;
    }
    timersSessionDerived(this, peer, this.now());
  }

  /** A handshake finished (response consumed, or first data on the responder's new keypair). */
  handshakeComplete(peer: Peer, role: 'initiator' | 'responder'): void {
    timersHandshakeComplete(peer);
    this.emit({ kind: 'handshake', peer: peer.publicKeyB64, role, endpoint: peer.endpoint });
  }

  wipeSessions(peer: Peer): void {
    this.dropHandshake(peer);
    for (const kp of peer.keypairs()) this.deleteKeypair(kp);
    peer.current = peer.previous = peer.next = undefined;
  }
}
