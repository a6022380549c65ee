// The disco exchange of magicsock (docs/protocol/datapath.md §2.1–§2.3, §3.3–§3.7): pings to a peer's candidate endpoints and
// through DERP, pongs that prove a direct path, CallMeMaybe so the peer pings us too, and the heartbeat that keeps a
// path in use proven. magicsock owns the sockets and the peers; this file decides which disco message goes where.
import { randomBytes } from 'node:crypto';
import { DiscoCodec } from '../disco/codec.ts';
import type { DiscoMessage } from '../disco/message.ts';
import { type Endpoint, formatEndpoint, parseEndpoint } from '../wg/endpoint.ts';
import { candidates, notePong, type PeerPath, sameAddr, setCallMeMaybe } from './peer-path.ts';

/** The address a disco pong names as the source of a ping that came through DERP region N (port N). */
const DERP_MAGIC_IP = '127.3.3.40';
/** Minimum spacing of disco pings to one peer. */
export const PING_INTERVAL_MS = 2_000;
/** An unanswered disco ping is forgotten after this long (tailscale: pingTimeoutDuration). */
const PING_TIMEOUT_MS = 5_000;
/** Minimum spacing of pings sent early for a reason (so a chatty or hostile peer cannot make us flood). */
const PING_SOON_MS = 250;
/** Heartbeat pings keep a path proven while the peer was sent to within SESSION_ACTIVE_MS (tailscale's values). */
const HEARTBEAT_MS = 3_000;
export const SESSION_ACTIVE_MS = 45_000;
/** How often a trusted path is still checked against every candidate, for a better one (tailscale: 1 min). */
const UPGRADE_INTERVAL_MS = 60_000;

/** How a peer answered a ping: directly (its endpoint) or through DERP (its region). */
export interface PathInfo {
  via: 'direct' | 'derp' | 'none';
  endpoint?: string;
  derpRegion?: number;
  latencyMs?: number;
}

export interface DiscoExchangeOptions {
  discoPrivate: Uint8Array;
  /** Our node key: pings carry it, so the peer knows who pings. */
  nodePublic: Uint8Array;
  /** The peer whose disco key this is (hex), if any. */
  peerByDisco: (keyHex: string) => PeerPath | undefined;
  /** Sends a datagram on the UDP socket at once (disco is rare and must not wait for the next batch). */
  sendUdp: (msg: Uint8Array, to: Endpoint) => void;
  sendDerp: (region: number, nodeKey: Uint8Array, msg: Uint8Array) => void;
  /** The DERP region a peer is reached through. */
  regionOf: (p: PeerPath) => number;
  /** Our candidate endpoints, for CallMeMaybe. */
  localEndpoints: () => string[];
  log: (message: string) => void;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export class DiscoExchange {
  private readonly codec: DiscoCodec;
  private readonly pings = new Map<
    string,
    { peer: PeerPath; to: Endpoint | undefined; sentAt: number; waiter?: (r: PathInfo) => void }
  >();

  constructor(private readonly o: DiscoExchangeOptions) {
    this.codec = new DiscoCodec({
      privateKey: o.discoPrivate,
      isKnownDiscoKey: (k) => o.peerByDisco(hex(k)) !== undefined,
    });
  }

  /** Disco packets refused: unknown sender key, bad box, malformed. */
  get rejected(): number {
    const d = this.codec.counters;
    return d.unknownKey + d.short + d.badKey + d.badBox + d.malformed;
  }

  /** Reconnected to our home DERP: peers may have dropped the old connection, so every path is pinged again. */
  forgetPingTimes(peers: Iterable<PeerPath>): void {
    for (const p of peers) p.lastPing = 0;
  }

  /**
   * With a trusted direct path, a heartbeat ping to it alone; otherwise (or once a minute, to look for a better
   * path) disco pings to every candidate endpoint and a CallMeMaybe through DERP so the peer pings us too.
   * `soon`: a reason to ping before the interval is up (a CallMeMaybe, a ping on a new path), still spaced.
   */
  pingPeer(p: PeerPath, now: number, soon = false): void {
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
    const endpoints = this.o.localEndpoints().map((e) => {
      const ep = parseEndpoint(e);
      return { ip: ep.address, port: ep.port };
    });
    this.send(p, { type: 'callMeMaybe', endpoints }, undefined);
    if (this.pings.size > 1024) this.pings.clear(); // unanswered pings must not pile up
  }

  private pingOne(p: PeerPath, to: Endpoint, now: number): void {
    const txId = new Uint8Array(randomBytes(12));
    this.pings.set(hex(txId), { peer: p, to, sentAt: now });
    this.send(p, { type: 'ping', txId, nodeKey: null, padding: 0 }, to);
  }

  /** Keeps paths of peers we talked to recently proven, as tailscale's heartbeat does (every 3 s for 45 s). */
  heartbeat(peers: Iterable<PeerPath>): void {
    const now = performance.now();
    for (const p of peers) {
      if (now - p.lastSend < SESSION_ACTIVE_MS && now - p.lastPing >= HEARTBEAT_MS) this.pingPeer(p, now);
    }
  }

  /** Seals m for the peer and sends it to `to`, or through DERP `region` (default: the peer's). */
  private send(p: PeerPath, m: DiscoMessage, to: Endpoint | undefined, region = this.o.regionOf(p)): void {
    if (!p.info.discoKey) return;
    if (DEBUG_DISCO) this.o.log(`disco → ${peerName(p)} ${m.type} via ${to ? formatEndpoint(to) : `DERP ${region}`}`);
    const env = this.codec.seal(p.info.discoKey, m.type === 'ping' ? { ...m, nodeKey: this.o.nodePublic } : m);
    if (to) this.o.sendUdp(env, to);
    else this.o.sendDerp(region, p.info.nodeKey, env);
  }

  /** A disco packet from `from` (UDP) or through DERP `region` from node key derpSrc. */
  receive(msg: Uint8Array, from: Endpoint | undefined, region: number, derpSrc?: Uint8Array): void {
    const got = this.codec.open(msg);
    if (!got) return; // counted by the codec (unknown key, bad box, malformed)
    const p = this.o.peerByDisco(hex(got.sender));
    if (!p) return;
    const m = got.message;
    const now = performance.now();
    if (DEBUG_DISCO)
      this.o.log(`disco ← ${peerName(p)} ${m.type} via ${from ? formatEndpoint(from) : `DERP ${region}`}`);
    if (m.type === 'ping') {
      // Answer on the path it came by, telling the peer where its ping came from.
      const src = from ? { ip: from.address, port: from.port } : { ip: DERP_MAGIC_IP, port: region };
      this.send(p, { type: 'pong', txId: m.txId, src }, from, region || this.o.regionOf(p));
      // A ping on a path we do not use yet: ping it straight back, so our side of the hole is proven too
      // without waiting for the next round (spaced per peer, so a flood of pings cannot make us flood).
      if (from && (!p.best || now >= p.bestUntil) && now - p.lastPingBack >= PING_SOON_MS) {
        p.lastPingBack = now;
        this.pingOne(p, from, now);
      }
    } else if (m.type === 'pong') {
      this.onPong(p, m.txId, from, region, now);
    } else if (m.type === 'callMeMaybe') {
      // Only through DERP from the peer's own node key (docs/protocol/datapath.md §3.7); its list replaces the previous one.
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
  ping(p: PeerPath, timeoutMs: number): Promise<PathInfo | undefined> {
    if (!p.info.discoKey) return Promise.resolve(undefined);
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
        this.send(p, { type: 'ping', txId, nodeKey: null, padding: 0 }, to);
      }
    });
  }
}

/** TRELLIS_DEBUG_DISCO=1: log every disco message sent and received (path discovery, hole punching). */
const DEBUG_DISCO = process.env.TRELLIS_DEBUG_DISCO === '1';
const peerName = (p: PeerPath): string => `${Buffer.from(p.info.nodeKey).toString('base64').slice(0, 8)}…`;

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
