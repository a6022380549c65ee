// One UDP socket shared by WireGuard, disco and STUN, plus DERP connections (home region, and the home regions of
// peers we send to): datagrams for a peer go to its best direct address once a disco ping/pong proved it, else
// through the peer's home DERP region. Incoming traffic is told apart by its first bytes (disco magic, STUN, else
// WireGuard). Netcheck picks our home region. Facts: datapath.md §2–§3.

import { randomBytes } from 'node:crypto';
import { DiscoCodec } from '../disco/codec.ts';
import { type DiscoMessage, looksLikeDisco } from '../disco/message.ts';
import { looksLikeStun } from '../stun/stun.ts';
import { udpBatchAvailable } from '../tun/native.ts';
import { BatchUdpTransport } from '../udp/batch-udp.ts';
import { type DatagramTransport, UdpTransport } from '../udp/udp.ts';
import { publicKeyOf } from '../wg/crypto.ts';
import { Endpoint, formatEndpoint, type PeerEndpoint, parseEndpoint } from '../wg/endpoint.ts';
import type { MessageViews } from '../wg/keypair.ts';
import { DerpPool, type DerpPoolCounters } from './derp-pool.ts';
import { EndpointDiscovery } from './endpoints.ts';
import type { NetcheckRegion, NetcheckResult } from './netcheck.ts';
import { candidates, type MagicPeer, newPeerPath, notePong, PeerPath, sameAddr, setCallMeMaybe } from './peer-path.ts';

/** The address a disco pong names as the source of a ping that came through DERP region N (port N). */
const DERP_MAGIC_IP = '127.3.3.40';
/** Candidate endpoints a handshake is sent to directly before a path is proven. */
const MAX_SPRAY = 4;
/** Minimum spacing of disco pings to one peer. */
const PING_INTERVAL_MS = 2_000;
/** An unanswered disco ping is forgotten after this long (tailscale: pingTimeoutDuration). */
const PING_TIMEOUT_MS = 5_000;
/** Minimum spacing of pings sent early for a reason (so a chatty or hostile peer cannot make us flood). */
const PING_SOON_MS = 250;
/** Heartbeat pings keep a path proven while the peer was sent to within SESSION_ACTIVE_MS (tailscale's values). */
const HEARTBEAT_MS = 3_000;
const SESSION_ACTIVE_MS = 45_000;
/** How often a trusted path is still checked against every candidate, for a better one (tailscale: 1 min). */
const UPGRADE_INTERVAL_MS = 60_000;

export interface PathInfo {
  via: 'direct' | 'derp' | 'none';
  endpoint?: string;
  derpRegion?: number;
  latencyMs?: number;
}

export interface MagicSockOptions {
  port: number;
  nodePrivate: Uint8Array;
  discoPrivate: Uint8Array;
  /**
   * A WireGuard datagram arrived: directly (from is its UDP source), or via DERP (from is the sending peer's
   * path). views: msg's ready-made views from the batch UDP socket (see MessageSlot), else undefined.
   */
  onWireGuard: (msg: Uint8Array, from: PeerEndpoint, views?: MessageViews) => void;
  log: (message: string) => void;
  /** Plain HTTP to DERP (a control server on http:// with its embedded DERP). */
  derpPlainHTTP: boolean;
  /** The end of a batch of received datagrams (or of one DERP packet): flush what it produced. */
  onBatchEnd?: () => void;
  /** Our endpoint set changed (a new STUN mapping): tell control. */
  onEndpointsChanged?: () => void;
  /** Netcheck chose a new home DERP region: tell control (Hostinfo.NetInfo.PreferredDERP). */
  onHomeDERPChanged?: (region: number) => void;
}

/** What magicsock counted: the drops a hostile network can cause, and traffic by path. */
export interface MagicCounters {
  discoIn: number;
  discoOut: number;
  derpIn: number;
  derpOut: number;
  udpOut: number;
  /** Disco packets refused: unknown sender key, bad box, malformed (detail in discoDetail). */
  discoRejected: number;
  /** STUN packets answering no request of ours (forged, late or unsolicited). */
  stunUnsolicited: number;
  /** DERP packets from a key that is not a peer in the netmap. */
  derpFromUnknown: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
/** Node keys in base64: how the peer table is keyed. */
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

export class MagicSock {
  private udp: DatagramTransport | undefined;
  private readonly disco: DiscoCodec;
  private readonly peers = new Map<string, PeerPath>(); // by node key, base64
  private readonly byDisco = new Map<string, PeerPath>(); // by disco key hex
  private readonly pings = new Map<
    string,
    { peer: PeerPath; to: Endpoint | undefined; sentAt: number; waiter?: (r: PathInfo) => void }
  >();
  private readonly derp: DerpPool;
  private readonly discovery: EndpointDiscovery;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly traffic = { discoIn: 0, discoOut: 0, derpIn: 0, derpOut: 0, udpOut: 0, derpFromUnknown: 0 };

  constructor(private readonly o: MagicSockOptions) {
    this.disco = new DiscoCodec({
      privateKey: o.discoPrivate,
      isKnownDiscoKey: (k) => this.byDisco.has(hex(k)),
    });
    this.derp = new DerpPool({
      privateKey: o.nodePrivate,
      useTLS: !o.derpPlainHTTP,
      log: o.log,
      onPacket: (region, src, pkt) => this.onDerp(region, src, pkt),
      // Reconnected home: peers may have dropped our old connection; ping them so paths are re-proven.
      onHomeConnected: () => {
        for (const p of this.peers.values()) p.lastPing = 0;
      },
    });
    this.discovery = new EndpointDiscovery({
      derp: this.derp,
      sendUdp: (msg, to) => {
        this.udp?.send(msg, to);
        this.udp?.flush();
      },
      useTLS: !o.derpPlainHTTP,
      port: () => this.port,
      log: o.log,
      onEndpointsChanged: o.onEndpointsChanged,
      onHomeDERPChanged: o.onHomeDERPChanged,
    });
  }

  get counters(): MagicCounters {
    const d = this.disco.counters;
    return {
      ...this.traffic,
      discoRejected: d.unknownKey + d.short + d.badKey + d.badBox + d.malformed,
      stunUnsolicited: this.discovery.netcheck.stunUnsolicited,
    };
  }

  get derpCounters(): DerpPoolCounters {
    return this.derp.counters;
  }

  async open(): Promise<void> {
    // recvmmsg/sendmmsg (and UDP GSO) through the addon where it exists; node:dgram otherwise.
    const onBatchEnd = () => this.o.onBatchEnd?.();
    this.udp = udpBatchAvailable()
      ? BatchUdpTransport.open(this.o.port, (msg, from, views) => this.onUdp(msg, from, views), onBatchEnd)
      : await UdpTransport.open(this.o.port, (msg, from) => {
          this.onUdp(msg, from);
          onBatchEnd();
        });
    this.heartbeatTimer = setInterval(() => this.heartbeat(), 1_000);
    this.heartbeatTimer.unref();
  }

  get port(): number {
    return this.udp?.port ?? 0;
  }

  /**
   * True once open() chose the batch socket: send() is then done with each message when flush() returns (sendmmsg
   * copies it to the kernel, DERP copies it into a frame). node:dgram keeps it until its asynchronous send.
   */
  get releasesOnFlush(): boolean {
    return this.udp instanceof BatchUdpTransport;
  }

  /** Our candidate endpoints (STUN mapping, LAN addresses), as reported to control and in CallMeMaybe. */
  localEndpoints(): string[] {
    return this.discovery.endpoints();
  }

  /** The DERP map's regions: STUN targets for netcheck and the nodes the DERP pool dials. */
  setDERPMap(regions: NetcheckRegion[]): void {
    this.discovery.setRegions(regions);
  }

  get homeDERP(): number {
    return this.derp.home;
  }

  setPeers(list: MagicPeer[]): void {
    const keep = new Set<string>();
    for (const info of list) {
      const k = b64(info.nodeKey);
      keep.add(k);
      const existing = this.peers.get(k);
      if (existing) {
        const moved = existing.info.endpoints.join(',') !== info.endpoints.join(',');
        existing.info = info;
        // new candidates for a peer we are talking to: try them now rather than at the next round
        if (moved && performance.now() - existing.lastSend < SESSION_ACTIVE_MS) {
          this.pingPeer(existing, performance.now(), true);
        }
      } else {
        this.peers.set(k, newPeerPath(info));
      }
    }
    for (const k of this.peers.keys()) if (!keep.has(k)) this.peers.delete(k);
    this.byDisco.clear();
    for (const p of this.peers.values()) if (p.info.discoKey) this.byDisco.set(hex(p.info.discoKey), p);
  }

  /** The DERP region a peer is reached through: its home, else ours. */
  private regionOf(p: PeerPath): number {
    return p.info.homeDERP > 0 ? p.info.homeDERP : p.lastDerpRegion || this.derp.home;
  }

  /** The endpoint WireGuard sends a peer's datagrams to: the peer's path (after setPeers listed it). */
  peerEndpoint(nodeKey: Uint8Array): PeerEndpoint | undefined {
    return this.peers.get(b64(nodeKey));
  }

  /**
   * Sends a WireGuard datagram: to a peer's path (its best direct address, else DERP), or to a bare UDP address
   * (a cookie reply to whoever sent a handshake).
   */
  send(msg: Uint8Array, to: PeerEndpoint): void {
    if (to instanceof PeerPath) this.sendToPeer(msg, to);
    else if (to instanceof Endpoint) this.udp?.send(msg, to);
  }

  private sendToPeer(msg: Uint8Array, p: PeerPath): void {
    const now = performance.now();
    p.lastSend = now;
    if (p.best && now < p.bestUntil) {
      this.udp?.send(msg, p.best);
      this.traffic.udpOut++;
      if (now - p.lastPing > PING_INTERVAL_MS) this.pingPeer(p, now); // keep the path fresh
      return;
    }
    this.pingPeer(p, now);
    const region = this.regionOf(p);
    this.derp.send(region, p.info.nodeKey, msg);
    this.traffic.derpOut++;
    // No proven path yet: handshake messages also go straight to every candidate endpoint, so the
    // first handshake does not wait for DERP (or for a retry 5 s later when DERP is not up yet).
    if (msg[0] === 1 || msg[0] === 2) {
      for (const text of candidates(p).slice(0, MAX_SPRAY)) {
        try {
          this.udp?.send(msg, parseEndpoint(text));
          this.traffic.udpOut++;
        } catch {}
      }
    } else if (p.best && !this.derp.isUp(region)) {
      this.udp?.send(msg, p.best); // stale but our only hope
    }
  }

  /**
   * With a trusted direct path, a heartbeat ping to it alone; otherwise (or once a minute, to look for a better
   * path) disco pings to every candidate endpoint and a CallMeMaybe through DERP so the peer pings us too.
   */
  private pingPeer(p: PeerPath, now: number, soon = false): void {
    // `soon`: a reason to ping before the interval is up (a CallMeMaybe, a ping on a new path), still spaced.
    if (!p.info.discoKey || now - p.lastPing < (soon ? PING_SOON_MS : PING_INTERVAL_MS)) return;
    p.lastPing = now;
    for (const [tx, sent] of this.pings) if (now - sent.sentAt > PING_TIMEOUT_MS) this.pings.delete(tx);
    if (p.best && now < p.bestUntil && !soon && now - p.lastFullPing < UPGRADE_INTERVAL_MS) {
      this.pingOne(p, p.best, now);
      return;
    }
    p.lastFullPing = now;
    for (const text of candidates(p)) {
      let to: Endpoint;
      try {
        to = parseEndpoint(text);
      } catch {
        continue;
      }
      this.pingOne(p, to, now);
    }
    const endpoints = this.localEndpoints().map((e) => {
      const ep = parseEndpoint(e);
      return { ip: ep.address, port: ep.port };
    });
    this.sendDisco(p, { type: 'callMeMaybe', endpoints }, undefined);
    if (this.pings.size > 1024) this.pings.clear(); // unanswered pings must not pile up
  }

  private pingOne(p: PeerPath, to: Endpoint, now: number): void {
    const txId = new Uint8Array(randomBytes(12));
    this.pings.set(hex(txId), { peer: p, to, sentAt: now });
    this.sendDisco(p, { type: 'ping', txId, nodeKey: null, padding: 0 }, to);
  }

  /** Keeps paths of peers we talked to recently proven, as tailscale's heartbeat does (every 3 s for 45 s). */
  private heartbeat(): void {
    const now = performance.now();
    for (const p of this.peers.values()) {
      if (now - p.lastSend < SESSION_ACTIVE_MS && now - p.lastPing >= HEARTBEAT_MS) this.pingPeer(p, now);
    }
  }

  /** Seals m for the peer and sends it to `to`, or through DERP `region` (default: the peer's). */
  private sendDisco(p: PeerPath, m: DiscoMessage, to: Endpoint | undefined, region = this.regionOf(p)): void {
    if (!p.info.discoKey) return;
    if (DEBUG_DISCO) this.o.log(`disco → ${peerName(p)} ${m.type} via ${to ? formatEndpoint(to) : `DERP ${region}`}`);
    const env = this.disco.seal(p.info.discoKey, m.type === 'ping' ? { ...m, nodeKey: this.nodePublic() } : m);
    this.traffic.discoOut++;
    if (to) {
      this.udp?.send(env, to);
      this.udp?.flush(); // disco is rare and must not wait for the next WireGuard batch
    } else this.derp.send(region, p.info.nodeKey, env);
  }

  private nodePublicCache: Uint8Array | undefined;
  private nodePublic(): Uint8Array {
    this.nodePublicCache ??= publicKeyOf(this.o.nodePrivate);
    return this.nodePublicCache;
  }

  private onUdp(msg: Uint8Array, from: Endpoint, views?: MessageViews): void {
    if (looksLikeDisco(msg)) {
      this.onDisco(msg, from, 0);
      return;
    }
    if (looksLikeStun(msg)) {
      this.discovery.netcheck.onStunPacket(msg);
      return;
    }
    this.o.onWireGuard(msg, from, views);
  }

  private onDerp(region: number, src: Uint8Array, pkt: Uint8Array): void {
    this.traffic.derpIn++;
    const peer = this.peers.get(b64(src));
    if (!peer) {
      this.traffic.derpFromUnknown++; // not a tailnet peer: nothing of ours to say to it
      return;
    }
    peer.lastDerpRegion = region; // the learned route, for a peer with no home in the netmap
    if (looksLikeDisco(pkt)) {
      this.onDisco(pkt, undefined, region, src);
      return;
    }
    this.o.onWireGuard(pkt, peer);
    this.o.onBatchEnd?.();
  }

  /** Sends what WireGuard queued on the UDP socket. */
  flush(): void {
    this.udp?.flush();
  }

  /** A disco packet from `from` (UDP) or through DERP `region`. */
  private onDisco(msg: Uint8Array, from: Endpoint | undefined, region: number, derpSrc?: Uint8Array): void {
    const got = this.disco.open(msg);
    if (!got) return; // counted by the codec (unknown key, bad box, malformed)
    this.traffic.discoIn++;
    const p = this.byDisco.get(hex(got.sender));
    if (!p) return;
    const m = got.message;
    const now = performance.now();
    if (DEBUG_DISCO)
      this.o.log(`disco ← ${peerName(p)} ${m.type} via ${from ? formatEndpoint(from) : `DERP ${region}`}`);
    if (m.type === 'ping') {
      // Answer on the path it came by, telling the peer where its ping came from.
      const src = from ? { ip: from.address, port: from.port } : { ip: DERP_MAGIC_IP, port: region };
      this.sendDisco(p, { type: 'pong', txId: m.txId, src }, from, region || this.regionOf(p));
      // A ping on a path we do not use yet: ping it straight back, so our side of the hole is proven too
      // without waiting for the next round (spaced per peer, so a flood of pings cannot make us flood).
      if (from && (!p.best || now >= p.bestUntil) && now - p.lastPingBack >= PING_SOON_MS) {
        p.lastPingBack = now;
        this.pingOne(p, from, now);
      }
    } else if (m.type === 'pong') {
      this.onPong(p, m.txId, from, region, now);
    } else if (m.type === 'callMeMaybe') {
      // Only through DERP from the peer's own node key (datapath.md §3.7); its list replaces the previous one.
      if (from || !derpSrc || !sameKey(derpSrc, p.info.nodeKey)) return;
      setCallMeMaybe(p, m.endpoints);
      // Ping every candidate now, whatever the round's spacing (its list may hold an endpoint our last round
      // did not know), with no CallMeMaybe back; at most one such burst per PING_SOON_MS.
      if (now - p.lastCmmPing < PING_SOON_MS) return;
      p.lastCmmPing = now;
      for (const text of candidates(p)) {
        try {
          this.pingOne(p, parseEndpoint(text), now);
        } catch {}
      }
    }
  }

  private onPong(p: PeerPath, txId: Uint8Array, from: Endpoint | undefined, region: number, now: number): void {
    const sent = this.pings.get(hex(txId));
    if (!sent || sent.peer !== p) return;
    this.pings.delete(hex(txId));
    const latency = now - sent.sentAt;
    if (!from || !sent.to) {
      sent.waiter?.({ via: 'derp', derpRegion: region, latencyMs: latency });
      return;
    }
    sent.waiter?.({ via: 'direct', endpoint: formatEndpoint(from), latencyMs: latency });
    const { changed, measure } = notePong(p, from, latency, sent.sentAt >= p.lastPing, now);
    if (changed) this.o.log(`direct path to peer via ${formatEndpoint(from)}`);
    if (measure) this.pingPeer(p, now, true); // the pong proved the path but not its speed: measure it now
  }

  /**
   * One disco ping round for `trellis ping`: to every candidate endpoint and through DERP; resolves with
   * the first pong (direct or DERP), or undefined after timeoutMs.
   */
  discoPing(nodeKey: Uint8Array, timeoutMs: number): Promise<PathInfo | undefined> {
    const p = this.peers.get(b64(nodeKey));
    if (!p?.info.discoKey) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const sent: string[] = [];
      let done = false;
      let derpAnswer: PathInfo | undefined;
      let grace: NodeJS.Timeout | undefined;
      const settle = (r: PathInfo | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearTimeout(grace);
        for (const tx of sent) this.pings.delete(tx);
        resolve(r);
      };
      // A DERP pong may beat the direct one on a LAN: give the direct path a moment before settling for DERP.
      const finish = (r: PathInfo | undefined) => {
        if (r?.via !== 'derp') return settle(r);
        derpAnswer ??= r;
        grace ??= setTimeout(() => settle(derpAnswer), 200);
      };
      const timer = setTimeout(() => settle(derpAnswer), timeoutMs);
      const now = performance.now();
      const targets: Array<Endpoint | undefined> = [];
      if (p.best) targets.push(p.best);
      for (const text of candidates(p)) {
        try {
          const ep = parseEndpoint(text);
          if (!targets.some((t) => t && sameAddr(t, ep))) targets.push(ep);
        } catch {}
      }
      targets.push(undefined); // and through the peer's DERP region
      for (const to of targets) {
        const txId = new Uint8Array(randomBytes(12));
        sent.push(hex(txId));
        this.pings.set(hex(txId), { peer: p, to, sentAt: now, waiter: finish });
        this.sendDisco(p, { type: 'ping', txId, nodeKey: null, padding: 0 }, to);
      }
      if (targets.length === 0) settle(undefined);
    });
  }

  /** The latest netcheck, run afresh, with the home DERP round trip over its open connection. */
  async report(): Promise<{ netcheck: NetcheckResult | undefined; home: number; homeLatencyMs: number | undefined }> {
    const netcheck = await this.discovery.run();
    const home = this.derp.home;
    return { netcheck, home, homeLatencyMs: home ? await this.derp.latency(home) : undefined };
  }

  /** DERP regions with an open connection. */
  derpConnected(): number[] {
    return this.derp.connected();
  }

  path(nodeKey: Uint8Array): PathInfo {
    const p = this.peers.get(b64(nodeKey));
    if (!p) return { via: 'none' };
    if (p.best && performance.now() < p.bestUntil) {
      return { via: 'direct', endpoint: formatEndpoint(p.best), latencyMs: p.latencyMs };
    }
    const region = this.regionOf(p);
    return region && this.derp.isUp(region) ? { via: 'derp', derpRegion: region } : { via: 'none' };
  }

  close(): void {
    this.discovery.close();
    clearInterval(this.heartbeatTimer);
    this.derp.close();
    this.udp?.close();
  }
}

/** TRELLIS_DEBUG_DISCO=1: log every disco message sent and received (path discovery, hole punching). */
const DEBUG_DISCO = process.env.TRELLIS_DEBUG_DISCO === '1';
const peerName = (p: PeerPath): string => `${b64(p.info.nodeKey).slice(0, 8)}…`;

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
