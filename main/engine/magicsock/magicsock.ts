// One UDP socket shared by WireGuard and disco, plus a DERP connection to the home region: datagrams for a
// peer go to its best direct address once a disco ping/pong proved it, else through DERP. Incoming traffic
// is told apart by its first bytes (disco magic, STUN, else WireGuard). Facts: datapath.md §2–§3.

import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { DerpClient } from '../derp/client.ts';
import type { DerpNode } from '../derp/dial.ts';
import { DiscoCodec } from '../disco/codec.ts';
import { type DiscoMessage, looksLikeDisco } from '../disco/message.ts';
import { UdpTransport } from '../plainwg/udp.ts';
import { bindingRequest, looksLikeStun, newTxID, parseBindingResponse } from '../stun/stun.ts';
import { publicKeyOf } from '../wg/crypto.ts';
import { type Endpoint, endpointOf, formatEndpoint, parseEndpoint } from '../wg/endpoint.ts';

/** The address Tailscale uses to name "via DERP region N" as if it were an endpoint. */
export const DERP_MAGIC_IP = '127.3.3.40';
/** How long a pong keeps a direct path trusted without a fresh one (tailscale: trustUDPAddrDuration). */
export const TRUST_DIRECT_MS = 6_500;
/** Candidate endpoints a handshake is sent to directly before a path is proven. */
const MAX_SPRAY = 4;
/** Minimum spacing of disco pings to one peer. */
const PING_INTERVAL_MS = 2_000;

export interface MagicPeer {
  nodeKey: Uint8Array;
  discoKey: Uint8Array | undefined;
  /** Candidate direct endpoints from the netmap ("ip:port"). */
  endpoints: string[];
  homeDERP: number;
}

interface PeerPath {
  info: MagicPeer;
  best: Endpoint | undefined;
  bestUntil: number;
  lastPing: number;
  latencyMs: number | undefined;
}

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
  /** A WireGuard datagram arrived (directly or via DERP). */
  onWireGuard: (msg: Uint8Array, from: Endpoint, peerKey: Uint8Array | undefined) => void;
  log: (message: string) => void;
  /** Plain HTTP to DERP (a control server on http:// with its embedded DERP). */
  derpPlainHTTP: boolean;
  /** Our endpoint set changed (a new STUN mapping): tell control. */
  onEndpointsChanged?: () => void;
}

/** How often STUN is asked again for our public mapping (tailscale re-STUNs every 20-26 s). */
const RESTUN_MS = 20_000;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
/** Node keys as WireGuard's Peer.publicKeyB64 spells them: the hot path passes that string straight in. */
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

export class MagicSock {
  private udp: UdpTransport | undefined;
  private readonly disco: DiscoCodec;
  private readonly peers = new Map<string, PeerPath>(); // by node key, base64
  private readonly byDisco = new Map<string, PeerPath>(); // by disco key hex
  private readonly pings = new Map<
    string,
    { peer: PeerPath; to: Endpoint | undefined; sentAt: number; waiter?: (r: PathInfo) => void }
  >();
  private derp: DerpClient | undefined;
  private derpRegion = 0;
  private derpNode: DerpNode | undefined;
  private derpConnecting = false;
  private derpRetry: NodeJS.Timeout | undefined;
  private closed = false;
  readonly counters = { discoIn: 0, discoOut: 0, stunIgnored: 0, derpIn: 0, derpOut: 0, udpOut: 0 };
  private stunServers: Endpoint[] = [];
  private readonly stunPending = new Map<string, number>(); // txID hex → sent at
  private readonly stunEndpoints = new Set<string>();
  private stunTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: MagicSockOptions) {
    this.disco = new DiscoCodec({
      privateKey: o.discoPrivate,
      isKnownDiscoKey: (k) => this.byDisco.has(hex(k)),
    });
  }

  async open(): Promise<void> {
    this.udp = await UdpTransport.open(this.o.port, (msg, from) => this.onUdp(msg, from));
  }

  get port(): number {
    return this.udp?.port ?? 0;
  }

  /** Our candidate endpoints: what STUN saw (our public mapping), then every LAN interface address with the port. */
  localEndpoints(exclude: Set<string>): string[] {
    const out: string[] = [...this.stunEndpoints];
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.internal || exclude.has(a.address) || a.address.startsWith('fe80:')) continue;
        if (a.address.startsWith('100.') || a.address.startsWith('fd7a:115c:a1e0:')) continue;
        const ep = formatEndpoint(endpointOf(a.address, this.port));
        if (!out.includes(ep)) out.push(ep);
      }
    }
    return out;
  }

  /** STUN servers from the DERP map (node IPv4 or literal HostName, STUNPort 0 = 3478, -1 = none). */
  setSTUNServers(servers: Endpoint[]): void {
    const key = (e: Endpoint[]) => e.map(formatEndpoint).join(',');
    if (key(servers) === key(this.stunServers)) return;
    this.stunServers = servers;
    this.restun();
  }

  /** Asks every STUN server for our mapping now, and again every RESTUN_MS. */
  private restun(): void {
    clearTimeout(this.stunTimer);
    if (this.closed || this.stunServers.length === 0) return;
    const now = performance.now();
    for (const [tx, at] of this.stunPending) if (now - at > 10_000) this.stunPending.delete(tx);
    for (const server of this.stunServers.slice(0, 3)) {
      const tx = newTxID();
      this.stunPending.set(hex(tx), now);
      this.udp?.send(bindingRequest(tx), server);
    }
    this.stunTimer = setTimeout(() => this.restun(), RESTUN_MS * (0.9 + Math.random() * 0.3));
    this.stunTimer.unref?.();
  }

  private onStun(msg: Uint8Array): void {
    const r = parseBindingResponse(msg);
    if (!r || !this.stunPending.delete(hex(r.txID))) {
      this.counters.stunIgnored++; // unsolicited or forged: no transaction of ours
      return;
    }
    const ep = formatEndpoint(endpointOf(r.address, r.port));
    if (this.stunEndpoints.has(ep)) return;
    this.stunEndpoints.clear(); // one current mapping per family is enough here
    this.stunEndpoints.add(ep);
    this.o.log(`STUN: our public endpoint is ${ep}`);
    this.o.onEndpointsChanged?.();
  }

  setPeers(list: MagicPeer[]): void {
    const keep = new Set<string>();
    for (const info of list) {
      const k = b64(info.nodeKey);
      keep.add(k);
      const existing = this.peers.get(k);
      if (existing) existing.info = info;
      else this.peers.set(k, { info, best: undefined, bestUntil: 0, lastPing: 0, latencyMs: undefined });
    }
    for (const k of this.peers.keys()) if (!keep.has(k)) this.peers.delete(k);
    this.byDisco.clear();
    for (const p of this.peers.values()) if (p.info.discoKey) this.byDisco.set(hex(p.info.discoKey), p);
  }

  /** The home DERP region and its first node; connects (and keeps reconnecting) to it. */
  setHomeDERP(region: number, node: DerpNode | undefined): void {
    if (region === this.derpRegion && this.derp && !this.derp.closed) return;
    this.derpRegion = region;
    this.derpNode = node;
    this.derp?.close();
    this.derp = undefined;
    void this.connectDERP(0);
  }

  private async connectDERP(attempt: number): Promise<void> {
    if (this.closed || !this.derpNode || this.derpConnecting) return;
    this.derpConnecting = true;
    try {
      const c = await DerpClient.connect({
        node: this.derpNode,
        privateKey: this.o.nodePrivate,
        useTLS: !this.o.derpPlainHTTP,
      });
      if (this.closed) {
        c.close();
        return;
      }
      this.derp = c;
      c.notePreferred(true);
      c.onPacket((src, pkt) => this.onDerp(src, pkt));
      c.onClose((e) => {
        this.o.log(`DERP region ${this.derpRegion} lost: ${e.message}`);
        this.derp = undefined;
        this.retryDERP(1);
      });
      this.o.log(`DERP region ${this.derpRegion} connected`);
    } catch (e) {
      this.o.log(`DERP region ${this.derpRegion}: ${(e as Error).message}`);
      this.retryDERP(attempt + 1);
    } finally {
      this.derpConnecting = false;
    }
  }

  private retryDERP(attempt: number): void {
    if (this.closed) return;
    const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)) * (0.8 + Math.random() * 0.4);
    clearTimeout(this.derpRetry);
    this.derpRetry = setTimeout(() => void this.connectDERP(attempt), delay);
  }

  /** Sends a WireGuard datagram to a peer (node key in base64) on its best path. */
  send(msg: Uint8Array, nodeKeyB64: string): void {
    const p = this.peers.get(nodeKeyB64);
    if (!p) return;
    const now = performance.now();
    if (p.best && now < p.bestUntil) {
      this.udp?.send(msg, p.best);
      this.counters.udpOut++;
      if (now - p.lastPing > PING_INTERVAL_MS) this.pingPeer(p, now); // keep the path fresh
      return;
    }
    this.pingPeer(p, now);
    if (this.derp && !this.derp.closed) {
      this.derp.send(p.info.nodeKey, msg);
      this.counters.derpOut++;
    }
    // No proven path yet: handshake messages also go straight to every candidate endpoint, so the
    // first handshake does not wait for DERP (or for a retry 5 s later when DERP is not up yet).
    if (msg[0] === 1 || msg[0] === 2) {
      for (const text of p.info.endpoints.slice(0, MAX_SPRAY)) {
        try {
          this.udp?.send(msg, parseEndpoint(text));
          this.counters.udpOut++;
        } catch {}
      }
    } else if (p.best && (!this.derp || this.derp.closed)) {
      this.udp?.send(msg, p.best); // stale but our only hope
    }
  }

  /** Disco pings to every candidate endpoint, and a CallMeMaybe through DERP so the peer pings us too. */
  private pingPeer(p: PeerPath, now: number): void {
    if (!p.info.discoKey || now - p.lastPing < PING_INTERVAL_MS) return;
    p.lastPing = now;
    for (const text of p.info.endpoints) {
      let to: Endpoint;
      try {
        to = parseEndpoint(text);
      } catch {
        continue;
      }
      const txId = new Uint8Array(randomBytes(12));
      this.pings.set(hex(txId), { peer: p, to, sentAt: now });
      this.sendDisco(p, { type: 'ping', txId, nodeKey: null, padding: 0 }, to);
    }
    if (this.derp && !this.derp.closed) {
      const endpoints = this.localEndpoints(new Set()).map((e) => {
        const ep = parseEndpoint(e);
        return { ip: ep.address, port: ep.port };
      });
      this.sendDisco(p, { type: 'callMeMaybe', endpoints }, undefined);
    }
    if (this.pings.size > 1024) this.pings.clear(); // unanswered pings must not pile up
  }

  private sendDisco(p: PeerPath, m: DiscoMessage, to: Endpoint | undefined): void {
    if (!p.info.discoKey) return;
    const env = this.disco.seal(p.info.discoKey, m.type === 'ping' ? { ...m, nodeKey: this.nodePublic() } : m);
    this.counters.discoOut++;
    if (to) this.udp?.send(env, to);
    else this.derp?.send(p.info.nodeKey, env);
  }

  private nodePublicCache: Uint8Array | undefined;
  private nodePublic(): Uint8Array {
    this.nodePublicCache ??= publicKeyOf(this.o.nodePrivate);
    return this.nodePublicCache;
  }

  private onUdp(msg: Uint8Array, from: Endpoint): void {
    if (looksLikeDisco(msg)) {
      this.onDisco(msg, from);
      return;
    }
    if (looksLikeStun(msg)) {
      this.onStun(msg);
      return;
    }
    this.o.onWireGuard(msg, from, undefined);
  }

  private onDerp(src: Uint8Array, pkt: Uint8Array): void {
    this.counters.derpIn++;
    if (looksLikeDisco(pkt)) {
      this.onDisco(pkt, undefined);
      return;
    }
    this.o.onWireGuard(pkt, endpointOf(DERP_MAGIC_IP, Math.max(1, this.derpRegion)), src);
  }

  private onDisco(msg: Uint8Array, from: Endpoint | undefined): void {
    const got = this.disco.open(msg);
    if (!got) return;
    this.counters.discoIn++;
    const p = this.byDisco.get(hex(got.sender));
    if (!p) return;
    const m = got.message;
    const now = performance.now();
    if (m.type === 'ping') {
      // Answer on the path it came by, telling the peer where its ping came from.
      const src = from ? { ip: from.address, port: from.port } : { ip: DERP_MAGIC_IP, port: this.derpRegion };
      this.sendDisco(p, { type: 'pong', txId: m.txId, src }, from);
      if (from && !p.best) this.pingPeer(p, now - PING_INTERVAL_MS); // try the path it used, from our side
    } else if (m.type === 'pong') {
      const sent = this.pings.get(hex(m.txId));
      if (!sent || sent.peer !== p) return;
      this.pings.delete(hex(m.txId));
      const latency = now - sent.sentAt;
      if (!from || !sent.to) {
        sent.waiter?.({ via: 'derp', derpRegion: this.derpRegion, latencyMs: latency });
        return;
      }
      sent.waiter?.({ via: 'direct', endpoint: formatEndpoint(from), latencyMs: latency });
      if (
        !p.best ||
        now >= p.bestUntil ||
        latency < (p.latencyMs ?? Number.POSITIVE_INFINITY) - 1 ||
        sameAddr(p.best, from)
      ) {
        if (!p.best || !sameAddr(p.best, from)) this.o.log(`direct path to peer via ${formatEndpoint(from)}`);
        p.best = from;
        p.latencyMs = latency;
      }
      p.bestUntil = now + TRUST_DIRECT_MS;
    } else if (m.type === 'callMeMaybe') {
      p.info = {
        ...p.info,
        endpoints: [
          ...new Set([...p.info.endpoints, ...m.endpoints.map((e) => formatEndpoint(endpointOf(e.ip, e.port)))]),
        ],
      };
      this.pingPeer(p, now - PING_INTERVAL_MS);
    }
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
      for (const text of p.info.endpoints) {
        try {
          const ep = parseEndpoint(text);
          if (!targets.some((t) => t && sameAddr(t, ep))) targets.push(ep);
        } catch {}
      }
      if (this.derp && !this.derp.closed) targets.push(undefined);
      for (const to of targets) {
        const txId = new Uint8Array(randomBytes(12));
        sent.push(hex(txId));
        this.pings.set(hex(txId), { peer: p, to, sentAt: now, waiter: finish });
        this.sendDisco(p, { type: 'ping', txId, nodeKey: null, padding: 0 }, to);
      }
      if (targets.length === 0) settle(undefined);
    });
  }

  /** Round-trip time to our home DERP server, or undefined when not connected. */
  async derpLatency(): Promise<{ region: number; latencyMs: number } | undefined> {
    if (!this.derp || this.derp.closed) return undefined;
    try {
      return { region: this.derpRegion, latencyMs: await this.derp.ping(3000) };
    } catch {
      return undefined;
    }
  }

  /** What STUN told us (our public endpoints); empty when UDP to the STUN servers does not work. */
  stunResults(): string[] {
    return [...this.stunEndpoints];
  }

  path(nodeKey: Uint8Array): PathInfo {
    const p = this.peers.get(b64(nodeKey));
    if (!p) return { via: 'none' };
    if (p.best && performance.now() < p.bestUntil) {
      return { via: 'direct', endpoint: formatEndpoint(p.best), latencyMs: p.latencyMs };
    }
    return this.derp && !this.derp.closed ? { via: 'derp', derpRegion: this.derpRegion } : { via: 'none' };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.derpRetry);
    clearTimeout(this.stunTimer);
    this.derp?.close();
    this.udp?.close();
  }
}

function sameAddr(a: Endpoint, b: Endpoint): boolean {
  return a.address === b.address && a.port === b.port;
}
