// One UDP socket shared by WireGuard, disco and STUN, plus DERP connections (home region, and the home regions of
// peers we send to): datagrams for a peer go to its best direct address once a disco ping/pong proved it, else
// through the peer's home DERP region. Incoming traffic is told apart by its first bytes (disco magic, STUN, else
// WireGuard). Netcheck picks our home region; disco-exchange.ts decides the disco pings. Facts: docs/protocol/datapath.md §2–§3.

import type { NetFacts } from '../control/net-info.ts';
import { looksLikeDisco } from '../disco/message.ts';
import { looksLikeStun } from '../stun/stun.ts';
import { udpBatchAvailable } from '../tun/native.ts';
import { BatchUdpTransport } from '../udp/batch-udp.ts';
import { type DatagramTransport, UdpTransport } from '../udp/udp.ts';
import { publicKeyOf } from '../wg/crypto.ts';
import { Endpoint, formatEndpoint, type PeerEndpoint, parseEndpoint } from '../wg/endpoint.ts';
import type { MessageViews } from '../wg/keypair.ts';
import { DerpPool, type DerpPoolCounters } from './derp-pool.ts';
import { DiscoExchange, type PathInfo, PING_INTERVAL_MS, SESSION_ACTIVE_MS } from './disco-exchange.ts';
import { EndpointDiscovery } from './endpoints.ts';
import type { NetcheckRegion, NetcheckResult } from './netcheck.ts';
import { candidates, type MagicPeer, newPeerPath, PeerPath } from './peer-path.ts';

export type { PathInfo };

/** Candidate endpoints a handshake is sent to directly before a path is proven. */
const MAX_SPRAY = 4;

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
  /** What NetInfo reports changed (see EndpointDiscovery). */
  onNetFactsChanged?: () => void;
}

/** What magicsock counted: the drops a hostile network can cause. */
export interface MagicCounters {
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
  private readonly disco: DiscoExchange;
  private readonly peers = new Map<string, PeerPath>(); // by node key, base64
  private readonly byDisco = new Map<string, PeerPath>(); // by disco key hex
  private readonly derp: DerpPool;
  private readonly discovery: EndpointDiscovery;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private derpFromUnknown = 0;

  constructor(private readonly o: MagicSockOptions) {
    this.disco = new DiscoExchange({
      discoPrivate: o.discoPrivate,
      nodePublic: publicKeyOf(o.nodePrivate),
      peerByDisco: (k) => this.byDisco.get(k),
      sendUdp: (msg, to) => {
        this.udp?.send(msg, to);
        this.udp?.flush();
      },
      sendDerp: (region, nodeKey, msg) => this.derp.send(region, nodeKey, msg),
      regionOf: (p) => this.regionOf(p),
      localEndpoints: () => this.localEndpoints(),
      log: o.log,
    });
    this.derp = new DerpPool({
      privateKey: o.nodePrivate,
      useTLS: !o.derpPlainHTTP,
      log: o.log,
      onPacket: (region, src, pkt) => this.onDerp(region, src, pkt),
      // Reconnected home: peers may have dropped our old connection; ping them so paths are re-proven.
      onHomeConnected: () => this.disco.forgetPingTimes(this.peers.values()),
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
      onNetFactsChanged: o.onNetFactsChanged,
    });
  }

  get counters(): MagicCounters {
    return {
      discoRejected: this.disco.rejected,
      stunUnsolicited: this.discovery.netcheck.stunUnsolicited,
      derpFromUnknown: this.derpFromUnknown,
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
    this.heartbeatTimer = setInterval(() => this.disco.heartbeat(this.peers.values()), 1_000);
    this.heartbeatTimer.unref();
  }

  get port(): number {
    return this.udp?.port ?? 0;
  }

  /**
   * UDP sends from a thread of the socket's own (the batch socket only; node:dgram sends asynchronously anyway).
   * For an engine thread that has more to do than carry packets: see the data path's userspace networking.
   */
  setSendThread(on: boolean): void {
    if (this.udp instanceof BatchUdpTransport) this.udp.setSendThread(on);
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
          this.disco.pingPeer(existing, performance.now(), true);
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
      if (now - p.lastPing > PING_INTERVAL_MS) this.disco.pingPeer(p, now); // keep the path fresh
      return;
    }
    this.disco.pingPeer(p, now);
    const region = this.regionOf(p);
    this.derp.send(region, p.info.nodeKey, msg);
    // No proven path yet: handshake messages also go straight to every candidate endpoint, so the
    // first handshake does not wait for DERP (or for a retry 5 s later when DERP is not up yet).
    if (msg[0] === 1 || msg[0] === 2) {
      for (const text of candidates(p).slice(0, MAX_SPRAY)) {
        try {
          this.udp?.send(msg, parseEndpoint(text));
        } catch {}
      }
    } else if (p.best && !this.derp.isUp(region)) {
      this.udp?.send(msg, p.best); // stale but our only hope
    }
  }

  private onUdp(msg: Uint8Array, from: Endpoint, views?: MessageViews): void {
    if (looksLikeDisco(msg)) {
      this.disco.receive(msg, from, 0);
      return;
    }
    if (looksLikeStun(msg)) {
      this.discovery.netcheck.onStunPacket(msg);
      return;
    }
    this.o.onWireGuard(msg, from, views);
  }

  private onDerp(region: number, src: Uint8Array, pkt: Uint8Array): void {
    const peer = this.peers.get(b64(src));
    if (!peer) {
      this.derpFromUnknown++; // not a tailnet peer: nothing of ours to say to it
      return;
    }
    peer.lastDerpRegion = region; // the learned route, for a peer with no home in the netmap
    if (looksLikeDisco(pkt)) {
      this.disco.receive(pkt, undefined, region, src);
      return;
    }
    this.o.onWireGuard(pkt, peer);
    this.o.onBatchEnd?.();
  }

  /** Sends what WireGuard queued on the UDP socket. */
  flush(): void {
    this.udp?.flush();
  }

  /** One disco ping round for `trellis ping` (see DiscoExchange.ping); undefined when nothing answered. */
  discoPing(nodeKey: Uint8Array, timeoutMs: number): Promise<PathInfo | undefined> {
    const p = this.peers.get(b64(nodeKey));
    return p ? this.disco.ping(p, timeoutMs) : Promise.resolve(undefined);
  }

  /** The latest netcheck and port-mapping probe, for Hostinfo.NetInfo (not run afresh). */
  netFacts(): NetFacts | undefined {
    return this.discovery.facts();
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
