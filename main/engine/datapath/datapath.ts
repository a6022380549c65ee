// The tailnet data path: the TUN device with this node's addresses and the tailnet routes, a WireGuard
// device whose peers are the netmap's peers (keyed by node key), magicsock for the paths, and the netmap's
// packet filter on everything that comes in. The engine creates one while it runs. Packets meet this machine at
// its packet port: the TUN, or in userspace networking the engine's own TCP/IP stack (netstack-port.ts).

import type { NetFacts } from '../control/net-info.ts';
import type { NetMap } from '../control/netmap.ts';
import type { TailNode } from '../control/tailcfg.ts';
import { keyFromText } from '../crypto/key-text.ts';
import { Quad100 } from '../dns/quad100.ts';
import { buildDnsTable } from '../dns/table.ts';
import { compileFilter } from '../filter/compile.ts';
import { FlowTable } from '../filter/conntrack.ts';
import type { CompiledFilter, FilterEnv } from '../filter/filter.ts';
import { AddrSet } from '../filter/prefix.ts';
import { MagicSock, type PathInfo } from '../magicsock/magicsock.ts';
import { netcheckRegions } from '../magicsock/netcheck.ts';
import type { MagicPeer } from '../magicsock/peer-path.ts';
import { buildIpPacket, tcpSegment } from '../packet/build.ts';
import { parseAddress, parsePrefix } from '../packet/ip.ts';
import { IPPROTO, PacketInfo, parsePacket, TCP_FLAGS } from '../packet/parse.ts';
import { tsmpPong, tsmpReject } from '../packet/tsmp.ts';
import type { DataPathCounters, NetcheckReport, NetworkingStatus } from '../protocol.ts';
import { type RouteChoice, selectAllowedIPs } from '../routes/allowed-ips.ts';
import { configureInterface } from '../tun/os-config.ts';
import type { TunPort } from '../tun/tun-port.ts';
import type { Prefix } from '../wg/allowedips.ts';
import { Device, type DropCounters } from '../wg/device.ts';
import { receiveDatagram } from '../wg/receive.ts';
import { sendPacket } from '../wg/send.ts';
import { TICK_MS, tickTimers } from '../wg/timers.ts';
import { inTailnetRanges, NetstackPort } from './netstack-port.ts';
import { type NetworkingMode, openTunFor, type PacketPort } from './packet-port.ts';

export const TAILNET_MTU = 1280;
const TAILNET_ROUTES = ['100.64.0.0/10', 'fd7a:115c:a1e0::/48'];

export interface DataPathOptions {
  tunName: string;
  port: number;
  /** How packets meet this machine (default 'tun'). */
  networking?: NetworkingMode;
  nodePrivate: Uint8Array;
  discoPrivate: Uint8Array;
  derpPlainHTTP: boolean;
  log: (message: string) => void;
  /** Our endpoints changed (STUN): the engine tells control. */
  onEndpointsChanged: () => void;
  /** Netcheck chose another home DERP region: the engine tells control. */
  onHomeDERPChanged: (region: number) => void;
  /** What Hostinfo.NetInfo says besides the home region changed: the engine tells control. */
  onNetFactsChanged?: () => void;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/** Inbound WireGuard refusals (the outbound ones, no route or endpoint, are not the network's doing). */
function inboundDrops(d: DropCounters): number {
  return (
    d.short +
    d.badType +
    d.badSize +
    d.badMac1 +
    d.unknownPeer +
    d.badHandshake +
    d.replayedInitiation +
    d.unknownIndex +
    d.expiredKeypair +
    d.authFailed +
    d.replay +
    d.malformedInner +
    d.notAllowedSource
  );
}

export interface PeerPathSummary extends PathInfo {
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export class DataPath {
  /** The TUN or the netstack, opened at the first netmap with addresses; tun/netstack say which. */
  private port: PacketPort | undefined;
  private tun: TunPort | undefined;
  private netstack: NetstackPort | undefined;
  /** Why 'auto' chose userspace networking. */
  private userspaceReason: string | undefined;
  private readonly device: Device;
  private readonly magic: MagicSock;
  private tick: NodeJS.Timeout | undefined;
  private filter: CompiledFilter = compileFilter([]);
  private readonly env: FilterEnv = { local: new AddrSet([]), conntrack: new FlowTable() };
  private readonly scratch = new PacketInfo();
  private configuredFor = '';
  private ownAddresses: string[] = [];
  /** Our own addresses alone (env.local also holds what we route for peers): what TSMP pings may name. */
  private own = new AddrSet([]);
  /** Destinations beyond our addresses that peers may reach through us (advertised routes, shrunk default routes). */
  private offeredNets: string[] = [];
  /** Inbound packets the netmap filter dropped. */
  filtered = 0;
  private osResolvers: string[] = [];
  private peerApi = { v4: 0, v6: 0 };
  private lastDnsInput: { self: NetMap['self']; peers: TailNode[]; dns: NetMap['dns']; exitNodeID: string } = {
    self: undefined,
    peers: [],
    dns: undefined,
    exitNodeID: '',
  };
  private readonly quad100 = new Quad100(
    (pkt) => this.port?.write(pkt),
    () => this.port?.flush(),
  );

  private constructor(private readonly o: DataPathOptions) {
    this.device = new Device({
      privateKey: o.nodePrivate,
      mtu: TAILNET_MTU,
      roaming: false, // each peer's endpoint is its magicsock path, which follows the peer by itself
      onEvent: (e) => {
        const peer = `peer ${e.peer.slice(0, 8)}…`;
        if (e.kind === 'handshake') {
          o.log(`WireGuard handshake with ${peer} done (${e.role}, path: ${e.endpoint?.describe() ?? 'none'})`);
        } else if (e.kind === 'handshakeGiveUp') o.log(`WireGuard gave up the handshake with ${peer} (no answer)`);
      },
    });
    this.magic = new MagicSock({
      port: o.port,
      nodePrivate: o.nodePrivate,
      discoPrivate: o.discoPrivate,
      derpPlainHTTP: o.derpPlainHTTP,
      log: o.log,
      onEndpointsChanged: o.onEndpointsChanged,
      onHomeDERPChanged: o.onHomeDERPChanged,
      onNetFactsChanged: o.onNetFactsChanged,
      onWireGuard: (msg, from, views) => receiveDatagram(this.device, msg, from, views),
      onBatchEnd: () => {
        this.port?.flush();
        this.magic.flush();
      },
    });
  }

  /** Connects the WireGuard device to magicsock and the TUN; after magic.open(), which picks the UDP socket. */
  private attachDevice(): void {
    this.device.attach({
      releasesOnFlush: this.magic.releasesOnFlush,
      sendDatagram: (msg, to) => this.magic.send(msg, to),
      writePacket: (pkt) => {
        const p = parsePacket(pkt, this.scratch);
        if (p.status === 'ok' && p.proto === IPPROTO.TSMP) return this.answerTsmp(pkt, p); // never the OS's
        if (p.status !== 'ok' || (this.filter.checkInbound(p, this.env) === 'drop' && !this.toPeerApi(p))) {
          this.filtered++;
          const notice = tsmpReject(pkt, p); // as tailscaled: the sender learns the ACLs refused its SYN
          if (notice) sendPacket(this.device, notice);
          return;
        }
        this.port?.write(pkt);
      },
      flush: () => {
        this.port?.flush();
        this.magic.flush();
      },
    });
  }

  static async open(o: DataPathOptions): Promise<DataPath> {
    const dp = new DataPath(o);
    await dp.magic.open();
    dp.attachDevice();
    dp.tick = setInterval(() => tickTimers(dp.device), TICK_MS);
    return dp;
  }

  /** Endpoints to report to control ("ip:port"). */
  localEndpoints(): string[] {
    return this.magic.localEndpoints();
  }

  /**
   * Applies the netmap: TUN addresses (once), WireGuard peers, magicsock peers and DERP, the filter. Each peer's
   * AllowedIPs are its approved routes as the route choice takes them (default routes for the exit node only).
   */
  async update(nm: NetMap, choice: RouteChoice = { exitNodeID: '', routeAll: false }): Promise<void> {
    const self = nm.self;
    if (!self) return;
    const addresses = (self.Addresses ?? []).filter((a) => typeof a === 'string');
    const key = addresses.join(',');
    if (key !== this.configuredFor && addresses.length > 0) {
      if (!this.port) this.openPort(addresses);
      if (this.tun) {
        await configureInterface({ name: this.tun.name, mtu: TAILNET_MTU, addresses, routes: TAILNET_ROUTES });
        const tso = this.tun.tso ? ' (TCP segmentation offload on)' : '';
        this.o.log(`${this.tun.name} up with ${addresses.join(', ')}${tso}`);
      } else if (this.netstack) {
        this.netstack.setAddresses(addresses);
        this.o.log(
          `userspace networking with ${addresses.join(', ')}${this.userspaceReason ? ` (${this.userspaceReason})` : ''}`,
        );
      }
      this.configuredFor = key;
    }
    this.ownAddresses = addresses;
    this.own = new AddrSet(addresses);
    this.env.local = new AddrSet([...addresses, ...this.offeredNets]);
    this.quad100.setOwnAddresses(addresses);
    this.lastDnsInput = { self: nm.self, peers: [...nm.peers.values()], dns: nm.dns, exitNodeID: choice.exitNodeID };
    this.rebuildDnsTable();
    this.filter = compileFilter(nm.packetFilter());

    const wanted: Array<{ nodeKey: Uint8Array; allowedIPs: Prefix[] }> = [];
    const magicPeers: MagicPeer[] = [];
    for (const p of nm.peers.values()) {
      if (typeof p.Key !== 'string' || p.Expired === true) continue;
      let nodeKey: Uint8Array;
      try {
        nodeKey = keyFromText('nodekey', p.Key);
      } catch {
        continue;
      }
      const allowedIPs: Prefix[] = [];
      for (const a of selectAllowedIPs(p, choice)) {
        try {
          allowedIPs.push(parsePrefix(a));
        } catch {}
      }
      wanted.push({ nodeKey, allowedIPs });
      let discoKey: Uint8Array | undefined;
      try {
        discoKey = typeof p.DiscoKey === 'string' ? keyFromText('discokey', p.DiscoKey) : undefined;
      } catch {}
      magicPeers.push({
        nodeKey,
        discoKey,
        endpoints: (p.Endpoints ?? []).filter((e) => typeof e === 'string'),
        homeDERP: p.HomeDERP ?? 0,
      });
    }
    // magicsock first: each WireGuard peer's endpoint is its magicsock path.
    this.magic.setPeers(magicPeers);
    const keep = new Set<string>();
    for (const { nodeKey, allowedIPs } of wanted) {
      keep.add(Buffer.from(nodeKey).toString('base64'));
      this.device.setPeer({ publicKey: nodeKey, allowedIPs, endpoint: this.magic.peerEndpoint(nodeKey) });
    }
    for (const [b64, peer] of this.device.peers) if (!keep.has(b64)) this.device.removePeer(peer.publicKey);

    this.magic.setDERPMap(netcheckRegions(nm.derpMap.Regions));
  }

  /** Opens the TUN, or the netstack in userspace networking; both end a batch the same way. */
  private openPort(addresses: string[]): void {
    const endBatch = () => {
      this.quad100.flushReplies(); // MagicDNS answers of this batch, in one write
      this.magic.flush();
    };
    const choice = openTunFor(this.o.networking ?? 'tun', this.o.tunName);
    if ('tun' in choice) {
      const tun = choice.tun;
      tun.start(
        (pkt) => this.sendFromTun(pkt),
        endBatch,
        (e) => this.o.log(`TUN read failed: ${e.message}`),
      );
      this.tun = tun;
      this.port = tun;
      return;
    }
    this.userspaceReason = choice.reason;
    this.netstack = new NetstackPort(addresses, (pkt) => this.sendFromTun(pkt), endBatch);
    this.port = this.netstack;
    // Here the engine's thread also runs the TCP/IP stack and the proxies: the UDP sends (40 % of an upload's time
    // on it) go to a thread of their own, beside it. In TUN mode the kernel does TCP, and the copy into the
    // thread's queue cost more than it gained (bench, same run: Trellis → Trellis 1.16× with it, 1.22× without).
    this.magic.setSendThread(true);
  }

  /** The userspace stack, in userspace networking once the first netmap opened it. */
  get userspaceStack(): NetstackPort['stack'] | undefined {
    return this.netstack?.stack;
  }

  /** How packets meet this machine: the port's kind once open, else the one asked for. */
  networking(): NetworkingStatus {
    if (this.netstack) return { mode: 'userspace', ...(this.userspaceReason ? { reason: this.userspaceReason } : {}) };
    return { mode: this.tun || this.o.networking !== 'userspace' ? 'tun' : 'userspace' };
  }

  /**
   * Whether a connection to address goes into the tailnet (as tailscaled's userspace dialer decides): a peer's
   * AllowedIPs hold it (its addresses, accepted subnets, the default routes of a chosen exit node), or it is in
   * the tailnet's own ranges (no peer there: unreachable, never out through the host).
   */
  routesViaTailnet(address: string): boolean {
    let b: Uint8Array;
    try {
      b = parseAddress(address);
    } catch {
      return false;
    }
    return inTailnetRanges(b) || this.device.routes.lookup(b, 0, b.length === 4 ? 4 : 16) !== undefined;
  }

  /** The name table quad-100 answers from (MagicDNS names, upstream resolvers by suffix). */
  get dnsTable(): Quad100['table'] {
    return this.quad100.table;
  }

  /** What peers may reach through us besides our addresses; the netmap's filter still decides who may. */
  setOfferedNets(nets: string[]): void {
    if (nets.join(',') === this.offeredNets.join(',')) return;
    this.offeredNets = nets;
    this.env.local = new AddrSet([...this.ownAddresses, ...nets]);
  }

  /** Whether the filter would let a TCP SYN from src in to dst:port (tailscaled's CheckTCP; not for the hot path). */
  filterAcceptsTcp(src: string, dst: string, port: number): boolean {
    const v6 = src.includes(':');
    if (v6 !== dst.includes(':')) return false;
    const syn = tcpSegment(40000, port, TCP_FLAGS.SYN);
    const pkt = buildIpPacket({ src, dst, proto: IPPROTO.TCP }, syn);
    const p = parsePacket(pkt, new PacketInfo());
    return p.status === 'ok' && this.filter.checkInbound(p, { ...this.env, conntrack: null }) === 'accept';
  }

  /** The resolvers quad-100 forwards other names to (control's, else the OS's own from before us). */
  defaultResolvers(): string[] {
    return this.quad100.table.routes.find((r) => r.suffix === '')?.resolvers ?? [];
  }

  /** The PeerAPI's ports: TCP to them is let in whatever the ACLs say; the PeerAPI checks its callers. */
  setPeerApiPorts(ports: { v4: number; v6: number }): void {
    this.peerApi = ports;
  }

  private toPeerApi(p: PacketInfo): boolean {
    if (p.proto !== IPPROTO.TCP || p.fragment || p.version === 0) return false;
    const port = p.version === 4 ? this.peerApi.v4 : this.peerApi.v6;
    return port !== 0 && p.dstPort === port && this.env.local.has(p.version, p.dst);
  }

  /** A TSMP ping to one of our addresses gets its pong (with our PeerAPI port), whatever the ACLs say. */
  private answerTsmp(pkt: Uint8Array, p: PacketInfo): void {
    if (p.version === 0 || !this.own.has(p.version, p.dst)) return; // not for a subnet or the internet behind us
    const pong = tsmpPong(pkt, p, p.version === 4 ? this.peerApi.v4 : this.peerApi.v6);
    if (pong) sendPacket(this.device, pong);
  }

  /** The OS's own nameservers from before we pointed it at quad-100: its default route when control sets none. */
  setOsResolvers(list: string[]): void {
    if (list.join(',') === this.osResolvers.join(',')) return;
    this.osResolvers = list;
    this.rebuildDnsTable();
  }

  private rebuildDnsTable(): void {
    const i = this.lastDnsInput;
    this.quad100.table = buildDnsTable(i.self, i.peers, i.dns, this.osResolvers, i.exitNodeID);
  }

  private sendFromTun(pkt: Uint8Array): void {
    const p = parsePacket(pkt, this.scratch);
    if (p.status === 'ok' && Quad100.isFor(p)) {
      this.quad100.handle(pkt, p); // MagicDNS: answered here (only from our own addresses), never sent to a peer
      return;
    }
    if (p.status === 'ok') this.filter.checkOutbound(p, this.env); // records UDP flows for reply admission
    sendPacket(this.device, pkt);
  }

  /** Per-peer path and WireGuard stats for status. */
  peerPath(nodeKey: Uint8Array): PeerPathSummary {
    const peer = this.device.peerByStatic(nodeKey);
    return {
      ...this.magic.path(nodeKey),
      lastHandshake: peer ? Math.floor(peer.lastHandshakeWall / 1000) : 0,
      rxBytes: peer?.rxBytes ?? 0,
      txBytes: peer?.txBytes ?? 0,
    };
  }

  discoPing(nodeKey: Uint8Array, timeoutMs: number): Promise<PathInfo | undefined> {
    return this.magic.discoPing(nodeKey, timeoutMs);
  }

  /** What Hostinfo.NetInfo reports: the latest netcheck, the port-mapping probe, and the firewall tool in use. */
  netFacts(): NetFacts | undefined {
    const f = this.magic.netFacts();
    // With a TUN the OS side drives iptables (routes/forwarding-linux.ts, linux-connmark.ts): tailscaled's
    // "ipt-default". Userspace networking touches no firewall, and tailscaled then reports no mode either.
    const tun = this.networking().mode === 'tun';
    return f && tun && process.platform === 'linux' ? { ...f, firewallMode: 'ipt-default' } : f;
  }

  /** A fresh netcheck: UDP, public endpoint, NAT kind, region latencies and the home region's DERP round trip. */
  async netcheck(): Promise<Omit<NetcheckReport, 'endpoints'>> {
    const r = await this.magic.report();
    const n = r.netcheck;
    return {
      udp: n?.udp ?? false,
      publicEndpoints: n?.publicEndpoints ?? [],
      mappingVariesByDestIP: n?.mappingVariesByDestIP ?? false,
      preferredDERP: r.home,
      regionLatencyMs: Object.fromEntries([...(n?.regionLatencyMs ?? [])].map(([id, ms]) => [id, round1(ms)])),
      latencyMethod: n?.method ?? 'none',
      derpConnected: this.magic.derpConnected(),
      ...(r.homeLatencyMs === undefined ? {} : { derp: { region: r.home, latencyMs: round1(r.homeLatencyMs) } }),
    };
  }

  /** What the data path dropped or refused, for status: the filter, WireGuard, disco, STUN, DERP. */
  counters(): DataPathCounters {
    const m = this.magic.counters;
    const d = this.magic.derpCounters;
    return {
      filterDropped: this.filtered,
      discoRejected: m.discoRejected,
      stunUnsolicited: m.stunUnsolicited,
      derpFromUnknown: m.derpFromUnknown,
      derpProtocolErrors: d.protocolErrors,
      derpDialFailures: d.dialFailures,
      wgRejected: inboundDrops(this.device.drops),
      dnsQueries: this.quad100.counters.queries,
      dnsDropped: this.quad100.counters.dropped + this.quad100.counters.foreign, // foreign: not from our addresses
      tunSuperPackets: this.tun?.tsoStats.superPackets ?? 0,
      tunOffloadDropped: this.tun?.tsoStats.dropped ?? 0,
    };
  }

  close(): void {
    clearInterval(this.tick);
    this.magic.close();
    this.port?.close();
  }
}
