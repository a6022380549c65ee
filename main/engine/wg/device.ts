// A WireGuard device: our static identity, the peers, the index table, and the outbound path.
// Inbound datagrams are handled in receive.ts, timers in timers.ts; both act on a Device.
import { performance } from 'node:perf_hooks';
import { DST_OFFSET, ipVersion } from '../packet/ip.ts';
import { AllowedIPs, type Prefix } from './allowedips.ts';
import { DEFAULT_TIMERS, REKEY_AFTER_MESSAGES, UNDER_LOAD_QUEUE, type WgTimers } from './constants.ts';
import { CookieChecker } from './cookie.ts';
import { publicKeyOf, randomIndex } from './crypto.ts';
import type { Endpoint } from './endpoint.ts';
import { createInitiation, type Identity } from './handshake.ts';
import { COUNTER_LIMIT, type Keypair, MessageSlot } from './keypair.ts';
import { Peer, type PeerConfig } from './peer.ts';
import { RateLimiter } from './ratelimiter.ts';
import { tai64n } from './tai64n.ts';

/** Where the device's output goes: datagrams to the network, decrypted packets to the TUN. */
export interface DeviceIO {
  /** peer is set for everything but cookie replies; a path-choosing transport (magicsock) routes by it. */
  sendDatagram(message: Uint8Array, to: Endpoint, peer?: Peer): void;
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
  | { kind: 'handshake'; peer: string; role: 'initiator' | 'responder'; endpoint: Endpoint | undefined }
  | { kind: 'handshakeGiveUp'; peer: string }
  | { kind: 'roamed'; peer: string; endpoint: Endpoint };

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
}

/** Transport messages in flight between flushes when the IO releases them on flush (see DeviceIO). */
const SEND_SLOTS = 128;
/** REKEY_AFTER_MESSAGES as a number, once: not a BigInt conversion per packet. */
const REKEY_AFTER = Number(REKEY_AFTER_MESSAGES);

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
  io: DeviceIO | undefined;
  private readonly onEvent: (e: DeviceEvent) => void;
  /** The send ring, made on attach() to an IO that releases on flush; the next slot; slots used since a flush. */
  private slots: MessageSlot[] = [];
  private nextSlot = 0;
  private slotsLent = 0;

  constructor(o: DeviceOptions) {
    this.identity = { staticPrivate: o.privateKey, staticPublic: publicKeyOf(o.privateKey) };
    this.timers = { ...DEFAULT_TIMERS, ...o.timers };
    this.mtu = o.mtu;
    this.underLoadRate = o.underLoadRate ?? UNDER_LOAD_QUEUE;
    this.cookieChecker = new CookieChecker(this.identity.staticPublic, this.timers.cookieRefreshTime, () => this.now());
    this.onEvent = o.onEvent ?? (() => {});
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
    this.slots = [];
    this.nextSlot = this.slotsLent = 0;
    if (io.releasesOnFlush) for (let i = 0; i < SEND_SLOTS; i++) this.slots.push(new MessageSlot(this.mtu));
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

  // ---- outbound ----

  /** One IP packet read from the TUN. The buffer may be reused by the caller after return. */
  sendPacket(packet: Uint8Array): void {
    const v = ipVersion(packet);
    if (v === 0) {
      this.drops.malformedInner++;
      return;
    }
    const peer = this.routes.lookup(packet, DST_OFFSET[v], v === 4 ? 4 : 16);
    if (!peer) {
      this.drops.noRoute++;
      return;
    }
    const kp = peer.current;
    const now = this.now(); // one clock read per packet, for the session check and the timers
    if (!kp || !this.usableForSending(kp, now) || peer.staged.length > 0) {
      peer.stage(packet);
      this.flushStaged(peer);
      return;
    }
    this.sendTransport(peer, kp, packet, now);
  }

  usableForSending(kp: Keypair, now = this.now()): boolean {
    return now - kp.created < this.timers.rejectAfterTime && kp.sendCounter < COUNTER_LIMIT;
  }

  /** Sends what is staged if a session allows it, else starts a handshake. */
  flushStaged(peer: Peer): void {
    const kp = peer.current;
    if (!kp || !this.usableForSending(kp)) {
      this.initiateHandshake(peer, false);
      return;
    }
    const staged = peer.staged;
    peer.staged = [];
    for (const p of staged) this.sendTransport(peer, kp, p);
  }

  sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
    this.flushStaged(peer);
  }

  sendTransport(peer: Peer, kp: Keypair, packet: Uint8Array, now = this.now()): void {
    if (!peer.endpoint || !this.io) {
      this.drops.noEndpoint++;
      return;
    }
    const msg = this.seal(kp, packet, this.io);
    this.io.sendDatagram(msg, peer.endpoint, peer);
    peer.txBytes += msg.length;
    peer.keepaliveAt = undefined;
    peer.lastAuthenticatedTraversal = now;
    if (packet.length > 0 && peer.newHandshakeAt === undefined) {
      peer.newHandshakeAt = now + this.timers.keepaliveTimeout + this.timers.rekeyTimeout + this.jitter();
    }
    if (kp.sendCounter > REKEY_AFTER || (kp.isInitiator && now - kp.created > this.timers.rekeyAfterTime)) {
      this.initiateHandshake(peer, false);
    }
  }

  /** Seals into the next send slot when there is a ring (flushing first once every slot is lent), else afresh. */
  private seal(kp: Keypair, packet: Uint8Array, io: DeviceIO): Uint8Array {
    if (this.slots.length === 0) return kp.seal(packet, this.mtu);
    if (this.slotsLent === this.slots.length) {
      io.flush();
      this.slotsLent = 0;
    }
    const msg = kp.sealInto(packet, this.mtu, this.slots[this.nextSlot]);
    if (msg === undefined) return kp.seal(packet, this.mtu); // bigger than the MTU: not what the slots hold
    this.nextSlot = (this.nextSlot + 1) % this.slots.length;
    this.slotsLent++;
    return msg;
  }

  jitter(): number {
    return Math.floor(Math.random() * this.timers.rekeyTimeoutJitterMax);
  }

  /** Sends a handshake initiation unless one went out less than REKEY_TIMEOUT ago (retries bypass that). */
  initiateHandshake(peer: Peer, isRetry: boolean): void {
    const now = this.now();
    // The rate limit carries the same random jitter as retries: two peers whose traffic is in step would
    // otherwise initiate at the same instant after each crossing, reject each other's responses, and repeat.
    if (!isRetry && now - peer.lastHandshakeSent < this.timers.rekeyTimeout + peer.handshakeJitter) return;
    if (!peer.endpoint || !this.io) {
      this.drops.noEndpoint++;
      return;
    }
    this.dropHandshake(peer);
    const localIndex = this.newIndex(peer);
    const { message, state } = createInitiation(this.identity, {
      remoteStatic: peer.publicKey,
      staticShared: peer.staticShared,
      localIndex,
      payload: tai64n(),
    });
    peer.cookies.addMacs(message);
    peer.handshake = { kind: 'initiationSent', state };
    peer.lastHandshakeSent = now;
    peer.handshakeJitter = this.jitter();
    peer.retransmitAt = now + this.timers.rekeyTimeout + this.jitter();
    this.sendHandshakeMessage(peer, message);
  }

  sendHandshakeMessage(peer: Peer, message: Uint8Array): void {
    if (!peer.endpoint || !this.io) return;
    this.io.sendDatagram(message, peer.endpoint, peer);
    peer.txBytes += message.length;
    peer.keepaliveAt = undefined;
    peer.lastAuthenticatedTraversal = this.now();
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
    peer.zeroKeysAt = this.now() + 3 * this.timers.rejectAfterTime;
  }

  /** A handshake finished (response consumed, or first data on the responder's new keypair). */
  handshakeComplete(peer: Peer, role: 'initiator' | 'responder'): void {
    peer.retransmitAt = undefined;
    peer.handshakeAttempts = 0;
    peer.sentLastMinuteHandshake = false;
    peer.lastHandshakeWall = Date.now();
    this.emit({ kind: 'handshake', peer: peer.publicKeyB64, role, endpoint: peer.endpoint });
  }

  wipeSessions(peer: Peer): void {
    this.dropHandshake(peer);
    for (const kp of peer.keypairs()) this.deleteKeypair(kp);
    peer.current = peer.previous = peer.next = undefined;
  }
}
