// DERP connections by region (docs/protocol/datapath.md §1). The home region is kept up and redialled with a short capped
// backoff; another region is dialled when we first send to a peer homed there, and closed once it has gone a
// minute without a send (tailscale: derpInactiveCleanupTime). Packets sent while a region is still connecting
// wait in a small queue, so the first handshake to a peer on another region is not lost.
import { DerpClient, type DerpError, type DerpNode } from '../derp/client.ts';

export const IDLE_CLOSE_MS = 60_000;
const SWEEP_MS = 15_000;
const QUEUE_MAX = 32;
/** Cap on the wait between redials of the home region: recovery must not lag far behind the server's return. */
const HOME_BACKOFF_MAX_MS = 4_000;

interface RegionConn {
  readonly region: number;
  client: DerpClient | undefined;
  connecting: boolean;
  queue: Array<{ key: Uint8Array; pkt: Uint8Array }>;
  lastSend: number;
  attempt: number;
  retry: NodeJS.Timeout | undefined;
}

export interface DerpPoolCounters {
  connects: number;
  dialFailures: number;
  /** Connections ended because the server sent bytes we cannot accept (bad frame, bad box…). */
  protocolErrors: number;
  /** Packets dropped from a full queue while their region was connecting. */
  queueDrops: number;
  /** Packets for a region that is not in the DERP map (and no home to fall back on). */
  noRegion: number;
}

export interface DerpPoolOptions {
  privateKey: Uint8Array;
  useTLS: boolean;
  log: (message: string) => void;
  onPacket: (region: number, src: Uint8Array, pkt: Uint8Array) => void;
  /** The home connection came up (again): a moment to re-announce ourselves to peers. */
  onHomeConnected?: () => void;
  /** Bound on one dial + handshake; default the client's 10 s. */
  connectTimeoutMs?: number;
}

export class DerpPool {
  private nodes = new Map<number, DerpNode[]>();
  private readonly conns = new Map<number, RegionConn>();
  private homeRegion = 0;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;
  readonly counters: DerpPoolCounters = { connects: 0, dialFailures: 0, protocolErrors: 0, queueDrops: 0, noRegion: 0 };

  constructor(private readonly o: DerpPoolOptions) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  get home(): number {
    return this.homeRegion;
  }

  /** The DERP map's dialable nodes by region id (STUN-only nodes left out by the caller). */
  setRegions(nodes: Map<number, DerpNode[]>): void {
    this.nodes = nodes;
    for (const [region, c] of this.conns) if (!nodes.has(region)) this.drop(c);
  }

  regions(): number[] {
    return [...this.nodes.keys()];
  }

  nodesOf(region: number): DerpNode[] {
    return this.nodes.get(region) ?? [];
  }

  /** Makes `region` home: connected now and kept up; the old home becomes an ordinary region. */
  setHome(region: number): void {
    if (region === this.homeRegion) return;
    const old = this.conns.get(this.homeRegion);
    if (old?.client && !old.client.closed) old.client.notePreferred(false);
    this.homeRegion = region;
    const c = this.conn(region);
    c.lastSend = performance.now();
    if (c.client && !c.client.closed) c.client.notePreferred(true);
    else {
      clearTimeout(c.retry);
      c.retry = undefined;
      void this.connect(c);
    }
  }

  isUp(region: number): boolean {
    const c = this.conns.get(region);
    return !!c?.client && !c.client.closed;
  }

  /** Regions with an open connection. */
  connected(): number[] {
    return [...this.conns.values()].filter((c) => c.client && !c.client.closed).map((c) => c.region);
  }

  /**
   * Sends through `region` (a region not in the map means our home). Returns false when the packet waits for a
   * connection or was dropped.
   */
  send(region: number, dstKey: Uint8Array, pkt: Uint8Array): boolean {
    if (this.closed) return false;
    const r = this.nodes.has(region) ? region : this.homeRegion;
    if (!this.nodes.has(r)) {
      this.counters.noRegion++;
      return false;
    }
    const c = this.conn(r);
    c.lastSend = performance.now();
    if (c.client && !c.client.closed) {
      c.client.send(dstKey, pkt);
      return true;
    }
    if (c.queue.length >= QUEUE_MAX) {
      c.queue.shift();
      this.counters.queueDrops++;
    }
    c.queue.push({ key: dstKey, pkt: pkt.slice() }); // the caller's buffer is reused for the next packet
    if (!c.retry) void this.connect(c); // else a redial is already scheduled: no dial per packet
    return false;
  }

  /** Round-trip time to a region's server over its open connection. */
  async latency(region: number, timeoutMs = 3_000): Promise<number | undefined> {
    const client = this.conns.get(region)?.client;
    if (!client || client.closed) return undefined;
    try {
      return await client.ping(timeoutMs);
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const c of [...this.conns.values()]) this.drop(c);
  }

  private conn(region: number): RegionConn {
    let c = this.conns.get(region);
    if (!c) {
      c = { region, client: undefined, connecting: false, queue: [], lastSend: 0, attempt: 0, retry: undefined };
      this.conns.set(region, c);
    }
    return c;
  }

  private drop(c: RegionConn): void {
    clearTimeout(c.retry);
    c.client?.close();
    c.client = undefined;
    c.queue.length = 0;
    this.conns.delete(c.region);
  }

  /** Wanted: the home region always; another while it was used within IDLE_CLOSE_MS. */
  private wanted(c: RegionConn): boolean {
    return !this.closed && (c.region === this.homeRegion || performance.now() - c.lastSend < IDLE_CLOSE_MS);
  }

  private sweep(): void {
    for (const c of [...this.conns.values()]) {
      if (this.wanted(c)) continue;
      this.o.log(`DERP region ${c.region}: idle for ${IDLE_CLOSE_MS / 1000} s, closing`);
      this.drop(c);
    }
  }

  private async connect(c: RegionConn): Promise<void> {
    if (this.closed || c.connecting || (c.client && !c.client.closed)) return;
    const nodes = this.nodes.get(c.region) ?? [];
    if (nodes.length === 0) return;
    c.connecting = true;
    let client: DerpClient | undefined;
    let lastError: Error | undefined;
    for (const node of nodes) {
      try {
        client = await DerpClient.connect({
          node,
          privateKey: this.o.privateKey,
          useTLS: this.o.useTLS,
          ...(this.o.connectTimeoutMs ? { timeoutMs: this.o.connectTimeoutMs } : {}),
        });
        break;
      } catch (e) {
        lastError = e as Error;
        if ((e as DerpError).kind === 'protocol') this.counters.protocolErrors++;
      }
    }
    c.connecting = false;
    if (!client) {
      this.counters.dialFailures++;
      this.o.log(`DERP region ${c.region}: ${lastError?.message ?? 'no node to dial'}`);
      c.queue.length = 0; // stale by the next attempt; WireGuard and disco resend on their own
      this.scheduleRetry(c);
      return;
    }
    if (!this.wanted(c) || this.conns.get(c.region) !== c) {
      client.close();
      return;
    }
    c.client = client;
    c.attempt = 0;
    this.counters.connects++;
    const isHome = c.region === this.homeRegion;
    if (isHome) client.notePreferred(true);
    client.onPacket((src, pkt) => this.o.onPacket(c.region, src, pkt));
    client.onClose((e) => {
      if (e.kind === 'protocol') this.counters.protocolErrors++;
      this.o.log(`DERP region ${c.region} lost: ${e.message}`);
      c.client = undefined;
      this.scheduleRetry(c);
    });
    this.o.log(`DERP region ${c.region} connected${isHome ? ' (home)' : ''}`);
    for (const q of c.queue.splice(0)) client.send(q.key, q.pkt);
    if (isHome) this.o.onHomeConnected?.();
  }

  private scheduleRetry(c: RegionConn): void {
    if (!this.wanted(c)) {
      this.drop(c);
      return;
    }
    c.attempt++;
    const cap = c.region === this.homeRegion ? HOME_BACKOFF_MAX_MS : 30_000;
    const delay = Math.min(cap, 250 * 2 ** Math.min(c.attempt, 8)) * (0.8 + Math.random() * 0.4);
    clearTimeout(c.retry);
    c.retry = setTimeout(() => {
      c.retry = undefined;
      void this.connect(c);
    }, delay);
    c.retry.unref();
  }
}
