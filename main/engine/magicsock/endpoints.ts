// Where this node can be reached and which DERP region is its home: netcheck rerun every 20–26 s (as tailscale
// re-STUNs), its preferred region made the DERP pool's home, and the candidate endpoints reported to control —
// the public mapping STUN saw (unless it varies by destination: a hard NAT) and every LAN address with our port.
import { networkInterfaces } from 'node:os';
import type { NetFacts } from '../control/net-info.ts';
import { type Endpoint, endpointOf, formatEndpoint } from '../wg/endpoint.ts';
import type { DerpPool } from './derp-pool.ts';
import { Netcheck, type NetcheckRegion, type NetcheckResult } from './netcheck.ts';
import { type PortMapProbe, probePortMapping } from './portmap-probe.ts';

const NETCHECK_MS = 20_000;
/** The gateway's port-mapping services are asked again after this long (they rarely change). */
const PORTMAP_PROBE_MS = 10 * 60_000;

export interface EndpointDiscoveryOptions {
  derp: DerpPool;
  sendUdp: (msg: Uint8Array, to: Endpoint) => void;
  useTLS: boolean;
  /** Our UDP port (known once the socket is open). */
  port: () => number;
  log: (message: string) => void;
  onEndpointsChanged?: () => void;
  onHomeDERPChanged?: (region: number) => void;
  /** What NetInfo reports, besides latencies, changed (UDP works, the NAT kind, port mapping). */
  onNetFactsChanged?: () => void;
  /** Ask the gateway about port mapping (default true; tests of netcheck alone turn it off). */
  probePortMapping?: boolean;
}

export class EndpointDiscovery {
  readonly netcheck: Netcheck;
  private regions: NetcheckRegion[] = [];
  private regionsKey = '';
  private last: NetcheckResult | undefined;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private stunEndpoints: string[] = [];
  private portMap: PortMapProbe | undefined;
  private portMapAt = Number.NEGATIVE_INFINITY;
  private factsKey = '';

  constructor(private readonly o: EndpointDiscoveryOptions) {
    this.netcheck = new Netcheck({ sendUdp: o.sendUdp, useTLS: o.useTLS });
  }

  /** Our candidate endpoints: what STUN saw (our public mapping), then every LAN interface address with the port. */
  endpoints(): string[] {
    const out: string[] = [...this.stunEndpoints];
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.internal || a.address.startsWith('fe80:')) continue;
        if (a.address.startsWith('100.') || a.address.startsWith('fd7a:115c:a1e0:')) continue; // tailnet's own
        const ep = formatEndpoint(endpointOf(a.address, this.o.port()));
        if (!out.includes(ep)) out.push(ep);
      }
    }
    return out;
  }

  /** The DERP map's regions: STUN targets for netcheck and the nodes the DERP pool dials. */
  setRegions(regions: NetcheckRegion[]): void {
    const key = JSON.stringify(regions);
    if (key === this.regionsKey) return;
    this.regionsKey = key;
    this.regions = regions;
    this.o.derp.setRegions(new Map(regions.filter((r) => r.derpNodes.length > 0).map((r) => [r.id, r.derpNodes])));
    void this.run();
  }

  /** Runs netcheck now (and again every NETCHECK_MS); the result, or the last one while a run is under way. */
  async run(): Promise<NetcheckResult | undefined> {
    if (this.closed || this.running || this.regions.length === 0) return this.last;
    this.running = true;
    clearTimeout(this.timer);
    try {
      const [r] = await Promise.all([this.netcheck.run(this.regions, this.o.derp.home), this.probePortMap()]);
      if (!this.closed) this.apply(r);
      return r;
    } finally {
      this.running = false;
      if (!this.closed) {
        this.timer = setTimeout(() => void this.run(), NETCHECK_MS * (0.9 + Math.random() * 0.3));
        this.timer.unref();
      }
    }
  }

  /** The latest netcheck and port-mapping probe as NetInfo reports them; undefined before the first netcheck. */
  facts(): NetFacts | undefined {
    const r = this.last;
    if (!r) return undefined;
    const answered = r.method === 'stun' ? r.stunAnswers : 0; // tailscaled: known from the second answer on
    return {
      udp: r.udp,
      regionLatencyMs: r.regionLatencyMs,
      ...(answered >= 2 ? { mappingVariesByDestIP: r.mappingVariesByDestIP } : {}),
      workingIPv6: false, // STUN is asked over IPv4 only
      osHasIPv6: Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === '::1')),
      ...(this.portMap ? { portMap: this.portMap } : {}),
    };
  }

  private async probePortMap(): Promise<void> {
    if (this.o.probePortMapping === false || performance.now() - this.portMapAt < PORTMAP_PROBE_MS) return;
    this.portMapAt = performance.now();
    this.portMap = await probePortMapping();
  }

  private apply(r: NetcheckResult): void {
    this.last = r;
    const f = this.facts();
    const key = JSON.stringify({ ...f, regionLatencyMs: undefined });
    if (key !== this.factsKey) {
      const first = this.factsKey === '';
      this.factsKey = key;
      if (!first) this.o.onNetFactsChanged?.();
    }
    if (r.preferredDERP && r.preferredDERP !== this.o.derp.home) {
      const ms = r.regionLatencyMs.get(r.preferredDERP);
      this.o.log(`home DERP region ${r.preferredDERP}${ms === undefined ? '' : ` (${ms.toFixed(1)} ms, ${r.method})`}`);
      this.o.derp.setHome(r.preferredDERP);
      this.o.onHomeDERPChanged?.(r.preferredDERP);
    }
    // Reported even when the mapping varies by destination (a hard NAT), as tailscale does: harmless, and a
    // peer behind a lenient filter may still get through on it.
    const mapped = r.publicEndpoints;
    if (mapped.join(',') !== this.stunEndpoints.join(',')) {
      this.stunEndpoints = mapped;
      if (mapped.length > 0) this.o.log(`STUN: our public endpoint is ${mapped.join(', ')}`);
      this.o.onEndpointsChanged?.();
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
