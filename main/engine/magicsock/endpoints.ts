// Where this node can be reached and which DERP region is its home: netcheck rerun every 20–26 s (as tailscale
// re-STUNs), its preferred region made the DERP pool's home, and the candidate endpoints reported to control —
// the public mapping STUN saw (unless it varies by destination: a hard NAT) and every LAN address with our port.
import { networkInterfaces } from 'node:os';
import { type Endpoint, endpointOf, formatEndpoint } from '../wg/endpoint.ts';
import type { DerpPool } from './derp-pool.ts';
import { Netcheck, type NetcheckRegion, type NetcheckResult } from './netcheck.ts';

const NETCHECK_MS = 20_000;

export interface EndpointDiscoveryOptions {
  derp: DerpPool;
  sendUdp: (msg: Uint8Array, to: Endpoint) => void;
  useTLS: boolean;
  /** Our UDP port (known once the socket is open). */
  port: () => number;
  log: (message: string) => void;
  onEndpointsChanged?: () => void;
  onHomeDERPChanged?: (region: number) => void;
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
      const r = await this.netcheck.run(this.regions, this.o.derp.home);
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

  private apply(r: NetcheckResult): void {
    this.last = r;
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
