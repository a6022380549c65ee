// The node's link to its tailnet while it is up: the map stream to control and the data path beside it, opened
// together (the UDP side first, so the first MapRequest carries endpoints) and closed together, and the Hostinfo
// updates that go back to control one at a time. The engine decides when; this file knows how.
import type { NodeKeys } from '../control/keys.ts';
import { MapLoop } from '../control/map-loop.ts';
import type { NetMap } from '../control/netmap.ts';
import { buildHostinfo, buildMapRequest } from '../control/requests.ts';
import type { Hostinfo, MapRequest } from '../control/tailcfg.ts';
import { DataPath } from '../datapath/datapath.ts';
import type { EngineOptions } from '../engine.ts';
import type { Prefs } from '../protocol.ts';
import { advertisedRoutes } from '../routes/offer.ts';
import type { NodeServices } from '../services/node-services.ts';
import { generatePrivateKey } from '../wg/crypto.ts';
import type { EngineEvents } from './events.ts';
import { within } from './within.ts';

export interface ConnectionHost {
  readonly options: EngineOptions;
  readonly events: EngineEvents;
  keys(): NodeKeys;
  prefs(): Prefs;
  services(): NodeServices | undefined;
  onMapMessage(m: Parameters<NetMap['apply']>[0]): void;
  /** The server refused the map stream for good (the node is unknown to it). */
  onFatal(reason: string): void;
}

export class Connection {
  private mapLoop: MapLoop | undefined;
  private dp: DataPath | undefined;
  private generation = 0;
  /** The latest data path open (one at a time). */
  private opening: Promise<void> = Promise.resolve();
  private homeDERP = 0;
  private hostinfoInFlight = false;
  private hostinfoPending = false;
  /** Disco keys are not persisted: a new one per engine. */
  readonly discoPrivate = generatePrivateKey();
  /** The node services winding down after the data path closed (the OS resolver put back). */
  closing: Promise<void> = Promise.resolve();

  constructor(private readonly h: ConnectionHost) {}

  get dataPath(): DataPath | undefined {
    return this.dp;
  }

  /** The map stream runs (or is retrying). */
  get mapping(): boolean {
    return this.mapLoop !== undefined;
  }

  /** Opens the data path, then the map stream; a stop() meanwhile wins. */
  open(): void {
    const generation = ++this.generation;
    // After the previous open: two at once would both want the TUN's name.
    const opened = this.opening.then(() => this.openDataPath(generation));
    this.opening = opened;
    void opened.then(() => {
      if (generation === this.generation) this.startMapLoop();
    });
  }

  stop(): void {
    this.generation++;
    this.mapLoop?.stop();
    this.mapLoop = undefined;
    const services = this.h.services();
    if (this.dp && services) this.closing = services.dataPathClosed();
    this.dp?.close();
    this.dp = undefined;
    this.homeDERP = 0;
    this.h.events.setHealth('control-unreachable', undefined);
  }

  /** Waits (at most limitMs) for the node services to wind down after stop(); a slow OS command must not hold up down. */
  async closed(limitMs = 10_000): Promise<void> {
    if ((await within(this.closing, limitMs)) === 'late')
      this.h.events.log('warn', `the OS settings were not all put back within ${limitMs / 1000} s`);
  }

  hostinfo(): Hostinfo {
    const prefs = this.h.prefs();
    const services = this.h.services()?.services() ?? [];
    // Userspace networking offers no routes (it cannot forward): control must not route peers through us.
    const userspace = this.dp?.networking().mode === 'userspace';
    const routes = userspace ? [] : advertisedRoutes(prefs);
    return buildHostinfo(prefs.hostname, this.homeDERP, services, routes, this.dp?.netFacts(), userspace);
  }

  private mapRequest(): MapRequest {
    return buildMapRequest({
      nodePrivate: this.h.keys().nodePrivate,
      discoPrivate: this.discoPrivate,
      hostinfo: this.hostinfo(),
      endpoints: this.dp?.localEndpoints() ?? [],
    });
  }

  /**
   * Sends our Hostinfo and endpoints to control, one update at a time: concurrent lite map requests may be applied
   * out of order, and an older one (say, without the PeerAPI ports) would then overwrite a newer one.
   */
  sendHostinfo(): void {
    if (this.hostinfoInFlight) {
      this.hostinfoPending = true;
      return;
    }
    const s = this.mapLoop?.currentSession;
    if (!s || s.closed) return;
    this.hostinfoInFlight = true;
    this.hostinfoPending = false;
    s.updateNode(this.mapRequest())
      .catch((e: Error) => this.h.events.log('warn', `hostinfo update failed: ${e.message}`))
      .finally(() => {
        this.hostinfoInFlight = false;
        if (this.hostinfoPending) this.sendHostinfo();
      });
  }

  /** Applies the netmap to the data path, then the node services to what it runs (while running() holds). */
  applyNetMap(netmap: NetMap, running: () => boolean): void {
    const dp = this.dp;
    if (!dp) return;
    const { events } = this.h;
    const prefs = this.h.prefs();
    dp.update(netmap, { exitNodeID: prefs.exitNodeID, routeAll: prefs.routeAll }).then(
      () => {
        events.setHealth('data-path', undefined);
        if (dp === this.dp && running()) void this.h.services()?.dataPathUpdated(dp, netmap, this.h.prefs());
      },
      (e: Error) => events.setHealth('data-path', `data path: ${e.message}`),
    );
  }

  private async openDataPath(generation: number): Promise<void> {
    const settings = this.h.options.dataPath;
    if (!settings || this.dp || generation !== this.generation) return;
    const { events } = this.h;
    try {
      const dp = await DataPath.open({
        tunName: settings.tunName,
        port: settings.port,
        networking: settings.networking,
        nodePrivate: this.h.keys().nodePrivate,
        discoPrivate: this.discoPrivate,
        derpPlainHTTP: this.h.prefs().controlURL.startsWith('http://') || process.env.TRELLIS_DERP_HTTP === '1',
        log: (m) => events.log('info', m),
        onEndpointsChanged: () => this.sendHostinfo(),
        onNetFactsChanged: () => this.sendHostinfo(),
        onHomeDERPChanged: (region) => {
          this.homeDERP = region;
          this.sendHostinfo();
        },
      });
      // stop() came while it opened (down during connect): the TUN and sockets must not stay open until the next up.
      if (generation !== this.generation) return void dp.close();
      this.dp = dp;
      events.setHealth('data-path', undefined);
    } catch (e) {
      events.setHealth('data-path', `cannot open the data path: ${(e as Error).message}`);
    }
  }

  private startMapLoop(): void {
    const o = this.h.options;
    const { events } = this.h;
    this.mapLoop = new MapLoop({
      serverUrl: this.h.prefs().controlURL,
      machinePrivate: this.h.keys().machinePrivate,
      request: () => this.mapRequest(),
      connectTimeoutMs: o.controlTimeoutMs,
      minBackoffMs: o.backoff?.minMs,
      maxBackoffMs: o.backoff?.maxMs,
      onMessage: (m) => this.h.onMapMessage(m),
      onDisconnect: (err, retryInMs) => {
        const why = err ? err.message : 'the server closed the map stream';
        events.setHealth(
          'control-unreachable',
          `lost the control server (${why}); retrying in ${Math.round(retryInMs / 1000)} s`,
        );
        events.log('warn', `map stream lost: ${why}; retry in ${retryInMs} ms`);
      },
      onFatal: (err) => {
        this.mapLoop = undefined;
        this.h.onFatal(`the control server no longer knows this node (${err.status})`);
      },
    });
  }
}
