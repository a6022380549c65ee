// One peer's path state in magicsock (docs/protocol/datapath.md §3.3–§3.7) and the rules that change it without any I/O: which
// endpoints are candidates, what a CallMeMaybe may add, and which direct address a pong makes the best one.
import { type Endpoint, endpointOf, formatEndpoint, type PeerEndpoint } from '../wg/endpoint.ts';

/** How long a pong keeps a direct path trusted without a fresh one (tailscale: trustUDPAddrDuration). */
export const TRUST_DIRECT_MS = 6_500;
/** A CallMeMaybe lists our endpoints; more than this from one peer is not a real node's list. */
const MAX_CMM_ENDPOINTS = 16;

export interface MagicPeer {
  nodeKey: Uint8Array;
  discoKey: Uint8Array | undefined;
  /** Candidate direct endpoints from the netmap ("ip:port"). */
  endpoints: string[];
  homeDERP: number;
}

/**
 * One peer's path: what WireGuard holds as the peer's endpoint (opaque to it) and magicsock sends through — the
 * proven direct address while it is trusted, else the peer's DERP region.
 */
export class PeerPath implements PeerEndpoint {
  best: Endpoint | undefined = undefined;
  bestUntil = 0;
  lastPing = 0;
  /** When we last pinged every candidate (not just the best path). */
  lastFullPing = 0;
  /** When we last sent the peer a WireGuard datagram. */
  lastSend = Number.NEGATIVE_INFINITY;
  /** When we last answered a ping on an unproven path with a ping of our own. */
  lastPingBack = 0;
  /** Endpoints from the peer's latest CallMeMaybe (replaced by the next one, bounded). */
  cmm: string[] = [];
  /** The DERP region we last heard the peer on (0 = never). */
  lastDerpRegion = 0;
  /** When a CallMeMaybe last made us ping every candidate. */
  lastCmmPing = Number.NEGATIVE_INFINITY;
  latencyMs: number | undefined = undefined;
  /** The node key: what names this peer to WireGuard's cookies (a path has no one address to bind them to). */
  readonly macSource: Uint8Array;
  /** The node key in base64. */
  readonly rateKey: string;

  constructor(public info: MagicPeer) {
    this.macSource = info.nodeKey;
    this.rateKey = Buffer.from(info.nodeKey).toString('base64');
  }

  describe(): string {
    if (this.best && performance.now() < this.bestUntil) return this.best.describe();
    const region = this.info.homeDERP || this.lastDerpRegion;
    return region > 0 ? `DERP region ${region}` : 'no path yet';
  }
}

export function newPeerPath(info: MagicPeer): PeerPath {
  return new PeerPath(info);
}

/** The peer's candidate endpoints: from the netmap, then from its latest CallMeMaybe. */
export function candidates(p: PeerPath): string[] {
  return p.cmm.length === 0 ? p.info.endpoints : [...new Set([...p.info.endpoints, ...p.cmm])];
}

/** A CallMeMaybe's list replaces the previous one: at most MAX_CMM_ENDPOINTS, no IPv6 link-local. */
export function setCallMeMaybe(p: PeerPath, endpoints: ReadonlyArray<{ ip: string; port: number }>): void {
  p.cmm = [];
  for (const e of endpoints) {
    if (p.cmm.length >= MAX_CMM_ENDPOINTS) break;
    if (e.ip.startsWith('fe80:')) continue;
    try {
      p.cmm.push(formatEndpoint(endpointOf(e.ip, e.port)));
    } catch {}
  }
}

/**
 * A direct pong from `from`, `latency` after its ping; `fresh` when that ping was of the latest round (an older
 * one waited for the hole to open: it proves the path, not its speed). Returns whether the best path changed and
 * whether the path still wants a latency measurement.
 */
export function notePong(
  p: PeerPath,
  from: Endpoint,
  latency: number,
  fresh: boolean,
  now: number,
): { changed: boolean; measure: boolean } {
  let changed = false;
  if (!p.best || now >= p.bestUntil || (fresh && latency < (p.latencyMs ?? Number.POSITIVE_INFINITY) - 1)) {
    if (!p.best || !sameAddr(p.best, from)) {
      changed = true;
      p.latencyMs = undefined;
    }
    p.best = from;
  }
  let measure = false;
  if (sameAddr(p.best, from)) {
    if (fresh) p.latencyMs = latency;
    else measure = p.latencyMs === undefined;
  }
  p.bestUntil = now + TRUST_DIRECT_MS;
  return { changed, measure };
}

export function sameAddr(a: Endpoint, b: Endpoint): boolean {
  return a.address === b.address && a.port === b.port;
}
