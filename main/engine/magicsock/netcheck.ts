// Netcheck (docs/protocol/datapath.md §4–§5): a STUN binding request to every DERP region tells whether UDP works, how the NAT maps
// us (our public endpoint, and whether that mapping changes with the destination: a hard NAT) and each region's
// round-trip time. The lowest-latency region becomes our preferred (home) DERP. Without any UDP answer the latency
// is the time to open TCP to the region's DERP server, as tailscale falls back to HTTPS timing when UDP is blocked.
import type { DerpNode } from '../derp/client.ts';
import { dialTCP, resolveTarget } from '../derp/dial.ts';
import { bindingRequest, newTxID, parseBindingResponse } from '../stun/stun.ts';
import { type Endpoint, endpointOf, formatEndpoint } from '../wg/endpoint.ts';

/** How long one round waits for STUN answers from regions that have not answered yet. */
export const STUN_WAIT_MS = 1_000;
/** A second request to every silent region, in case the first datagram was lost. */
const STUN_RETRY_MS = 300;
/** Requests sent to each region at once: two answers tell whether the mapping varies (as tailscaled's repeated
 *  probes do, also with a single region). */
const PROBES_PER_REGION = 2;
/** Once every region answered, how long a missing second answer is waited for. */
const SECOND_ANSWER_GRACE_MS = 50;
const TCP_TIMEOUT_MS = 1_500;
/** Keep the current home unless another region is clearly closer: by 10 ms and a third (as tailscale does). */
const SWITCH_RATIO = 2 / 3;
const SWITCH_MIN_GAIN_MS = 10;

export interface NetcheckRegion {
  id: number;
  /** The first node's STUN address, if it has one (STUNPort -1 = none). */
  stun: Endpoint | undefined;
  /** Dialable DERP nodes (not STUN-only), for the TCP fallback and the DERP pool. */
  derpNodes: DerpNode[];
}

export interface NetcheckResult {
  udp: boolean;
  /** Our mapping as the STUN servers saw it (one per family), lowest-latency region's first. */
  publicEndpoints: string[];
  /** Answers saw different mappings: an endpoint-dependent (hard) NAT. Known only with stunAnswers ≥ 2. */
  mappingVariesByDestIP: boolean;
  /** STUN answers counted (IPv4): tailscaled reports MappingVariesByDestIP from the second one on. */
  stunAnswers: number;
  /** Region id → round-trip ms (STUN, or TCP connect without UDP). */
  regionLatencyMs: Map<number, number>;
  /** Chosen home region; 0 when the map has no region. */
  preferredDERP: number;
  /** How latency was measured. */
  method: 'stun' | 'tcp' | 'none';
}

interface Pending {
  region: number;
  sentAt: number;
  done: (r: { region: number; ms: number; mapped: string }) => void;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Regions of a DERP map with their STUN endpoint and dialable nodes, sorted by id. */
export function netcheckRegions(regions: Record<string, unknown> | null | undefined): NetcheckRegion[] {
  const out: NetcheckRegion[] = [];
  for (const raw of Object.values(regions ?? {})) {
    const r = raw as { RegionID?: unknown; Nodes?: unknown } | null;
    if (!r || typeof r.RegionID !== 'number' || !Array.isArray(r.Nodes)) continue;
    const nodes = r.Nodes.filter(
      (n): n is DerpNode & { STUNOnly?: boolean; STUNPort?: number } =>
        !!n && typeof n === 'object' && typeof (n as DerpNode).HostName === 'string',
    );
    let stun: Endpoint | undefined;
    for (const n of nodes) {
      if (n.STUNPort === -1) continue;
      const host = n.IPv4 && n.IPv4 !== 'none' ? n.IPv4 : n.HostName;
      try {
        stun = endpointOf(host, n.STUNPort && n.STUNPort > 0 ? n.STUNPort : 3478);
        break;
      } catch {
        // a DNS name: not resolved here; IP literals cover Headscale's DERP and labs
      }
    }
    out.push({ id: r.RegionID, stun, derpNodes: nodes.filter((n) => n.STUNOnly !== true) });
  }
  return out.sort((a, b) => a.id - b.id);
}

/** The home region for these latencies, keeping `current` unless another is clearly (10 ms and a third) faster. */
export function choosePreferred(latency: Map<number, number>, current: number, regionIds: number[]): number {
  let best = 0;
  let bestMs = Number.POSITIVE_INFINITY;
  for (const [id, ms] of latency) {
    if (ms < bestMs || (ms === bestMs && id < best)) [best, bestMs] = [id, ms];
  }
  if (best === 0) return regionIds.includes(current) ? current : (regionIds[0] ?? 0);
  const currentMs = latency.get(current);
  const notMuchBetter =
    currentMs !== undefined && (currentMs - bestMs < SWITCH_MIN_GAIN_MS || bestMs > currentMs * SWITCH_RATIO);
  if (current !== best && notMuchBetter) return current;
  return best;
}

export class Netcheck {
  private readonly pending = new Map<string, Pending>(); // STUN txID hex → round waiting for it
  /** STUN packets that answer no transaction of ours (late, forged or unsolicited). */
  stunUnsolicited = 0;

  constructor(
    private readonly o: {
      sendUdp: (msg: Uint8Array, to: Endpoint) => void;
      useTLS: boolean;
    },
  ) {}

  /** A STUN packet from the shared socket. */
  onStunPacket(msg: Uint8Array): void {
    const r = parseBindingResponse(msg);
    const p = r ? this.pending.get(hex(r.txID)) : undefined;
    if (!r || !p) {
      this.stunUnsolicited++;
      return;
    }
    this.pending.delete(hex(r.txID));
    p.done({
      region: p.region,
      ms: performance.now() - p.sentAt,
      mapped: formatEndpoint(endpointOf(r.address, r.port)),
    });
  }

  async run(regions: NetcheckRegion[], currentHome: number): Promise<NetcheckResult> {
    const latency = new Map<number, number>();
    /** Our mapping as each answer saw it: two per region asked (tailscaled's probes repeat too). */
    const mapped: string[] = [];
    await new Promise<void>((resolve) => {
      const asked = regions.filter((r) => r.stun).map((r) => r.id);
      const answers = new Map<number, number>(asked.map((id) => [id, 0]));
      const ours = new Set<string>();
      let timer: NodeJS.Timeout | undefined;
      let retry: NodeJS.Timeout | undefined;
      let grace: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        clearTimeout(retry);
        clearTimeout(grace);
        for (const tx of ours) this.pending.delete(tx);
        resolve();
      };
      const done = (a: { region: number; ms: number; mapped: string }) => {
        const n = answers.get(a.region) ?? 0;
        if (n >= PROBES_PER_REGION) return; // a retry's answer after both of the first
        answers.set(a.region, n + 1);
        if (n === 0) latency.set(a.region, a.ms);
        mapped.push(a.mapped);
        const counts = [...answers.values()];
        if (counts.every((c) => c >= PROBES_PER_REGION)) return finish();
        // Every region heard from: a lost second answer costs at most a short wait, not the whole round.
        if (counts.every((c) => c > 0) && !grace) grace = setTimeout(finish, SECOND_ANSWER_GRACE_MS);
      };
      const ask = () => {
        for (const r of regions) {
          if (!r.stun || answers.get(r.id) !== 0) continue;
          for (let i = 0; i < PROBES_PER_REGION; i++) {
            const tx = newTxID();
            ours.add(hex(tx));
            this.pending.set(hex(tx), { region: r.id, sentAt: performance.now(), done });
            this.o.sendUdp(bindingRequest(tx), r.stun);
          }
        }
      };
      if (asked.length === 0) return finish();
      ask();
      retry = setTimeout(ask, STUN_RETRY_MS);
      timer = setTimeout(finish, STUN_WAIT_MS);
    });
    const udp = latency.size > 0;
    if (!udp) await this.tcpLatencies(regions, latency);
    return {
      udp,
      publicEndpoints: [...new Set(mapped)].slice(0, 1),
      mappingVariesByDestIP: new Set(mapped).size > 1,
      stunAnswers: mapped.length,
      regionLatencyMs: latency,
      preferredDERP: choosePreferred(
        latency,
        currentHome,
        regions.filter((r) => r.derpNodes.length > 0).map((r) => r.id),
      ),
      method: udp ? 'stun' : latency.size > 0 ? 'tcp' : 'none',
    };
  }

  private async tcpLatencies(regions: NetcheckRegion[], latency: Map<number, number>): Promise<void> {
    await Promise.all(
      regions.map(async (r) => {
        const node = r.derpNodes[0];
        if (!node) return;
        const t0 = performance.now();
        try {
          const sock = await dialTCP(
            resolveTarget({ node, useTLS: this.o.useTLS }),
            AbortSignal.timeout(TCP_TIMEOUT_MS),
          );
          latency.set(r.id, performance.now() - t0);
          sock.destroy();
        } catch {
          // unreachable region: no latency, never preferred
        }
      }),
    );
  }
}
