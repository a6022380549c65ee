// What runs beside the data path once it is up: Taildrop's PeerAPI on our tailnet addresses (its ports go to
// control in Hostinfo.Services) and the OS resolver pointed at quad-100 while accept-DNS is on. Both follow the
// engine's data path: started after each netmap is applied, taken down with it, and recovered after a crash.
// In userspace networking nothing of the OS is touched: the proxies take the resolver's and the routes' place,
// and the PeerAPI listens in the netstack.
import { readFile } from 'node:fs/promises';
import type { NetMap } from '../control/netmap.ts';
import type { DataPathSettings } from '../core/engine-options.ts';
import type { EngineEvents } from '../core/events.ts';
import { within } from '../core/within.ts';
import type { DataPath } from '../datapath/datapath.ts';
import { nameserversOf, OsDns } from '../dns/os-dns.ts';
import type { NetworkingStatus, Prefs } from '../protocol.ts';
import { routedPrefixes } from '../routes/allowed-ips.ts';
import { advertisedRoutes } from '../routes/offer.ts';
import { RouteOffering } from '../routes/offering.ts';
import { OsRoutes } from '../routes/os-routes.ts';
import { Taildrop } from '../taildrop/service.ts';
import { LinkMonitor } from './link-monitor.ts';
import { NetstackPeerApi, withIdleTimeout } from './netstack-peerapi.ts';
import { PortForwarder } from './port-forward.ts';
import { UserspaceProxies } from './userspace-proxies.ts';

/** How packets meet this machine, and where userspace networking's proxies listen ("host:port"; absent: none). */
export type NetworkingSettings = Pick<DataPathSettings, 'networking' | 'socks5Listen' | 'httpProxyListen'>;

/** How long the cleanup on down waits for an update under way (its OS commands have their own time limits). */
const UPDATE_WAIT_MS = 15_000;

const NO_OFFER_IN_USERSPACE =
  'advertising routes or an exit node is not supported in userspace networking: this node offers only itself';

export class NodeServices {
  readonly taildrop: Taildrop;
  private readonly osDns: OsDns;
  private readonly osRoutes: OsRoutes;
  /** Forwarding, SNAT and the filter's reach while we offer routes; DNS-over-HTTPS for peers using us as exit node. */
  private readonly offering: RouteOffering;
  /** The data path the PeerAPI serves, while it runs: its filter lets the PeerAPI's ports in. */
  private dp: DataPath | undefined;
  /** Updates after netmaps: the one running, the latest waiting, and which data path they belong to. */
  private updating: Promise<void> = Promise.resolve();
  private nextUpdate: { dp: DataPath; nm: NetMap; prefs: Prefs; generation: number } | undefined;
  private generation = 0;
  /** The latest update's inputs (TUN mode; the engine's live netmap and prefs), applied again after a network change. */
  private latest: { dp: DataPath; nm: NetMap; prefs: Prefs } | undefined;
  /** Watches this machine's addresses while a TUN data path runs (userspace networking touches no route). */
  private readonly links: LinkMonitor;
  /** Userspace networking (once a data path opened that way): its proxies and the PeerAPI's netstack listeners. */
  private proxies: UserspaceProxies | undefined;
  private readonly stackPeerApi = new NetstackPeerApi();
  /** Userspace networking: tailnet ports forwarded to local listeners (prefs.forwardPorts). */
  private forwarder: PortForwarder | undefined;

  constructor(
    stateDir: string,
    private readonly tunName: string,
    private readonly events: EngineEvents,
    /** The PeerAPI moved (new ports): tell control. */
    private readonly onServicesChanged: () => void,
    private readonly settings: NetworkingSettings = {},
  ) {
    const log = (m: string) => events.log('info', m);
    this.taildrop = new Taildrop(stateDir, {
      log,
      onReceived: (f) => events.emit({ type: 'event', event: 'fileReceived', ...f }),
      onPortsChanged: (ports) => {
        this.dp?.setPeerApiPorts(ports);
        this.events.setHealth('peerapi', undefined);
        this.onServicesChanged();
      },
    });
    this.osDns = new OsDns(stateDir, log);
    this.osRoutes = new OsRoutes(stateDir, log);
    this.offering = new RouteOffering(stateDir, tunName, events);
    this.links = new LinkMonitor(tunName, () => this.networkChanged());
  }

  /**
   * An address came or went on this machine: the routes again (allow-LAN's exceptions and the LAN-source rules are
   * made from the LANs there are), and control hears our endpoints, after a fresh netcheck.
   */
  private networkChanged(): void {
    const last = this.latest;
    if (!last) return;
    this.events.log('info', 'network change: the LANs and our endpoints again');
    void this.dataPathUpdated(last.dp, last.nm, last.prefs);
    this.onServicesChanged();
    last.dp.netcheck().catch((e: Error) => this.events.log('warn', `netcheck after a network change: ${e.message}`));
  }

  /** What a crashed run left behind is put back: a resolv.conf pointing at quad-100, exit-node routing, forwarding. */
  async recover(): Promise<void> {
    await this.osDns.recover().catch((e: Error) => this.events.log('warn', `DNS: ${e.message}`));
    await this.osRoutes.recover().catch((e: Error) => this.events.log('warn', `routes: ${e.message}`));
    await this.offering.recover();
  }

  /** The peers we may send files to: none, rather than a failed status call, should one surprise the code. */
  fileTargetNames(): string[] {
    try {
      return this.taildrop.targets().map((t) => t.name);
    } catch (e) {
      this.events.log('warn', `cannot list file targets: ${(e as Error).message}`);
      return [];
    }
  }

  /** Hostinfo.Services entries (the PeerAPI ports, empty until it listens; and its DNS-over-HTTPS, as tailscaled). */
  services(): Array<{ Proto: string; Port: number }> {
    const ports = this.taildrop.services();
    return ports.length > 0 ? [...ports, { Proto: 'peerapi-dns-proxy', Port: 1 }] : ports;
  }

  /**
   * The data path applied a netmap: the OS resolver and routes, what we offer, the PeerAPI on our addresses. One update runs at a
   * time and a burst of netmaps collapses into the latest (a PeerAPI moved twice at once would restart for nothing).
   */
  dataPathUpdated(dp: DataPath, nm: NetMap, prefs: Prefs): Promise<void> {
    const queued = this.nextUpdate !== undefined;
    this.nextUpdate = { dp, nm, prefs, generation: this.generation };
    if (!dp.userspaceStack) {
      this.latest = { dp, nm, prefs };
      this.links.start();
    }
    if (queued) return this.updating;
    this.updating = this.updating.then(async () => {
      const u = this.nextUpdate;
      this.nextUpdate = undefined;
      if (!u || u.generation !== this.generation) return; // the data path closed meanwhile
      const current = () => u.generation === this.generation;
      if (u.dp.userspaceStack) return this.userspaceUpdated(u.dp, u.nm, u.prefs, current);
      await Promise.all([this.syncOsDns(u.dp, u.nm, u.prefs.acceptDNS), this.syncRoutes(u.nm, u.prefs)]);
      if (current()) await this.offering.apply(u.dp, u.prefs, current); // first: DNS access follows the filter
      if (current()) await this.startPeerApi(u.dp, u.nm, u.prefs, current);
    });
    return this.updating;
  }

  /** The data path is gone (down, logout, stop): PeerAPI closed, OS resolver and routes put back, forwarding removed. */
  async dataPathClosed(): Promise<void> {
    this.generation++;
    this.nextUpdate = undefined;
    this.latest = undefined;
    this.links.stop();
    this.dp = undefined;
    this.taildrop.close();
    this.stackPeerApi.close();
    this.forwarder?.close();
    this.forwarder = undefined;
    this.taildrop.connector = undefined;
    this.proxies?.close();
    // An update under way finishes first, so nothing it sets up outlives the cleanup; bounded, since the OS being
    // put back matters more (each of its steps checks that its data path is still the current one).
    if ((await within(this.updating, UPDATE_WAIT_MS)) === 'late') {
      this.events.log('warn', `an update of the OS settings still ran after ${UPDATE_WAIT_MS / 1000} s; cleaning up`);
    }
    if (this.proxies) {
      this.proxies = undefined; // userspace networking: the OS was never touched, so nothing to put back
      return;
    }
    await Promise.all([
      this.syncOsDns(undefined, undefined, false),
      this.syncRoutes(undefined, undefined),
      this.offering.stop(),
    ]);
  }

  /** The proxies' addresses while they listen (userspace networking). */
  proxyStatus(): Pick<NetworkingStatus, 'socks5' | 'httpProxy'> {
    const p = this.proxies;
    return { ...(p?.socks5 ? { socks5: p.socks5 } : {}), ...(p?.httpProxy ? { httpProxy: p.httpProxy } : {}) };
  }

  /** Userspace networking: the proxies up (once), offering refused plainly, the PeerAPI in the netstack. */
  private async userspaceUpdated(dp: DataPath, nm: NetMap, prefs: Prefs, current: () => boolean): Promise<void> {
    this.events.setHealth('routes', advertisedRoutes(prefs).length > 0 ? NO_OFFER_IN_USERSPACE : undefined);
    if (!this.proxies) {
      // The OS's resolvers (read, never changed) answer other names when control sets none, as with a TUN.
      const conf = process.platform === 'win32' ? '' : await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
      dp.setOsResolvers(nameserversOf(conf));
      this.proxies = new UserspaceProxies(dp, (m) => this.events.log('info', m));
      const proxies = this.proxies;
      const problems = await proxies.start(this.settings);
      if (!current()) proxies.close(); // the data path closed while they came up
      this.events.setHealth('proxies', problems.length > 0 ? problems.join('; ') : undefined);
    }
    const stack = dp.userspaceStack;
    if (current() && stack) {
      this.forwarder ??= new PortForwarder({
        listen: (port) => stack.listen(port),
        log: (m) => this.events.log('info', m),
      });
      this.forwarder.set(prefs.forwardPorts);
      await this.startPeerApi(dp, nm, prefs, current, stack);
    }
  }

  /** Policy routing for the chosen exit node and accepted subnets; all of it away without a netmap. */
  private async syncRoutes(nm: NetMap | undefined, prefs: Prefs | undefined): Promise<void> {
    try {
      if (nm && prefs) {
        const choice = { exitNodeID: prefs.exitNodeID, routeAll: prefs.routeAll };
        const poke = await this.osRoutes.apply({
          tunName: this.tunName,
          subnets: routedPrefixes(nm.peers.values(), choice),
          exitNode: prefs.exitNodeID !== '',
          allowLAN: prefs.exitNodeAllowLANAccess,
        });
        if (poke) this.onServicesChanged(); // a lite map request: the map stream's flow gets its mark saved
      } else {
        await this.osRoutes.remove();
      }
      this.events.setHealth('routes', undefined);
    } catch (e) {
      this.events.setHealth('routes', `cannot set up the routes: ${(e as Error).message}`);
    }
  }

  private async startPeerApi(
    dp: DataPath,
    nm: NetMap,
    prefs: Prefs,
    current: () => boolean,
    stack?: NonNullable<DataPath['userspaceStack']>,
  ): Promise<void> {
    const addrs = (nm.self?.Addresses ?? []).filter((a): a is string => typeof a === 'string');
    if (addrs.length === 0) return;
    this.dp = dp;
    this.taildrop.setNetMap(nm, stack ? undefined : this.offering.dnsAccess(dp, nm, prefs));
    try {
      if (await this.taildrop.listen(addrs, stack !== undefined)) {
        dp.setPeerApiPorts(this.taildrop.ports());
        this.onServicesChanged();
      }
      if (stack) this.stackPeerApi.serve(stack, this.taildrop.ports(), (s) => this.taildrop.acceptConnection(s));
      const proxies = this.proxies;
      this.taildrop.connector =
        stack && proxies ? async (h, p) => withIdleTimeout(await proxies.dial(h, p)) : undefined;
      this.events.setHealth('peerapi', undefined);
    } catch (e) {
      if (!current()) return; // the data path went down while the PeerAPI started: nothing to warn of
      this.events.setHealth('peerapi', `Taildrop cannot receive: ${(e as Error).message}`);
    }
  }

  /** The OS resolver follows quad-100 while the data path runs with accept-DNS on; else it is put back. */
  async syncOsDns(dp: DataPath | undefined, nm: NetMap | undefined, acceptDNS: boolean): Promise<void> {
    // Userspace networking leaves the OS resolver alone.
    if (dp?.userspaceStack || this.proxies || this.settings.networking === 'userspace') return;
    try {
      if (dp && nm && acceptDNS) {
        await this.osDns.apply({ searchDomains: nm.dns?.Domains ?? [], interfaceName: this.tunName });
        dp.setOsResolvers(this.osDns.previousNameservers);
      } else {
        await this.osDns.restore(this.tunName);
      }
      this.events.setHealth('dns', undefined);
    } catch (e) {
      this.events.setHealth('dns', `cannot configure the OS resolver: ${(e as Error).message}`);
    }
  }
}
