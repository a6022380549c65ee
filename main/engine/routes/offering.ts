// This node offering routes while its data path runs: the filter's reach (what peers may address through us), the
// OS's forwarding and SNAT (Linux), a health warning while the kernel does not forward, and who may use our PeerAPI's
// DNS-over-HTTPS. Everything follows the prefs and the netmap at each update and goes away with the data path.
import { readFile } from 'node:fs/promises';
import type { NetMap } from '../control/netmap.ts';
import type { TailNode } from '../control/tailcfg.ts';
import type { EngineEvents } from '../core/events.ts';
import type { DataPath } from '../datapath/datapath.ts';
import type { DohAccess } from '../dns/doh.ts';
import { nameserversOf } from '../dns/os-dns.ts';
import { QUAD100_V4, QUAD100_V6 } from '../dns/resolver.ts';
import type { Prefs } from '../protocol.ts';
import type { DnsAccessCheck } from '../taildrop/service.ts';
import { forwardingOffWarning, LinuxForwarding } from './forwarding-linux.ts';
import { advertisedRoutes, offeredLocalNets } from './offer.ts';

/** Health keys this file sets. */
export const HEALTH_IP_FORWARD_OFF = 'ip-forward-off';
export const HEALTH_FORWARDING = 'forwarding';

function familiesOf(routes: string[]): Array<4 | 6> {
  const out: Array<4 | 6> = [];
  if (routes.some((r) => !r.includes(':'))) out.push(4);
  if (routes.some((r) => r.includes(':'))) out.push(6);
  return out;
}

export class RouteOffering {
  private readonly forwarding: LinuxForwarding | undefined;
  /** The host's own first nameserver, read at each netmap (tailscaled reads resolv.conf per query, cached). */
  private hostNameserver = '';

  constructor(
    stateDir: string,
    private readonly tunName: string,
    private readonly events: EngineEvents,
  ) {
    const log = (m: string) => events.log('info', m);
    this.forwarding = process.platform === 'linux' ? new LinuxForwarding(stateDir, log) : undefined;
  }

  recover(): Promise<void> {
    return (this.forwarding?.recover() ?? Promise.resolve()).catch((e: Error) =>
      this.events.log('warn', `cannot remove the forwarding rules of an earlier run: ${e.message}`),
    );
  }

  /** Brings the offer in line with the prefs (routes advertised) for this data path. */
  async apply(dp: DataPath, prefs: Prefs, current: () => boolean = () => true): Promise<void> {
    const advertised = advertisedRoutes(prefs);
    dp.setOfferedNets(offeredLocalNets(advertised));
    const families = familiesOf(advertised);
    this.hostNameserver = nameserversOf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''))[0] ?? '';
    if (!current()) return; // a data path that closed meanwhile gets no rules
    if (!this.forwarding) {
      const unsupported = `This node offers routes, but Trellis forwards them on Linux only (not on ${process.platform}).`;
      this.events.setHealth(HEALTH_FORWARDING, families.length > 0 ? unsupported : undefined);
      return;
    }
    const off = families.length > 0 ? await forwardingOffWarning(families) : '';
    this.events.setHealth(HEALTH_IP_FORWARD_OFF, off || undefined);
    const failed = await this.forwarding
      .sync(families.length > 0 ? { tun: this.tunName, families } : undefined)
      .catch((e: Error) => e.message);
    this.events.setHealth(
      HEALTH_FORWARDING,
      failed ? `Peers cannot be forwarded through this node: ${failed}` : undefined,
    );
  }

  /** The data path went down: forwarding rules removed, warnings cleared. */
  async stop(): Promise<void> {
    await this.forwarding?.sync(undefined).catch((e: Error) => this.events.log('warn', e.message));
    this.events.setHealth(HEALTH_IP_FORWARD_OFF, undefined);
    this.events.setHealth(HEALTH_FORWARDING, undefined);
  }

  /**
   * Who may use our DNS-over-HTTPS, as tailscaled decides: a peer of our own user always; another only while we offer
   * an exit node and the filter would let it reach the internet's port 53 (0.0.0.0, or 2000:: from an IPv6 address).
   * Answers come from this host's first nameserver, or quad-100's upstreams when that is quad-100 itself.
   */
  dnsAccess(dp: DataPath, nm: NetMap, prefs: Prefs): DnsAccessCheck {
    const self = nm.self;
    const ns = this.hostNameserver;
    const resolvers = ns && ns !== QUAD100_V4 && ns !== QUAD100_V6 ? [ns] : dp.defaultResolvers();
    const access: DohAccess = { resolvers };
    return (node: TailNode, ip: string) => {
      if (typeof self?.User === 'number' && self.User === node.User) return access;
      if (!prefs.advertiseExitNode) return undefined;
      return dp.filterAcceptsTcp(ip, ip.includes(':') ? '2000::' : '0.0.0.0', 53) ? access : undefined;
    };
  }
}
