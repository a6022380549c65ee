// Hostinfo.NetInfo: what this node learned about its network (netcheck, the gateway's port-mapping services),
// sent to control in tailscaled's shape (tailcfg.NetInfo) so the admin views of both read alike. Control and peers
// act only on PreferredDERP; the rest is shown to admins. A fact not checked is left out, never guessed.

/** What the data path measured, in plain terms. */
export interface NetFacts {
  /** A STUN round trip completed. */
  udp: boolean;
  /** Region id → round trip in ms (STUN over IPv4, or TCP when UDP is blocked). */
  regionLatencyMs: ReadonlyMap<number, number>;
  /** Known only when two or more regions answered STUN. */
  mappingVariesByDestIP?: boolean;
  /** An IPv6 STUN round trip completed. */
  workingIPv6: boolean;
  /** The OS has IPv6 at all (a loopback ::1). */
  osHasIPv6: boolean;
  /** The gateway's port-mapping services; absent = not checked. */
  portMap?: { upnp: boolean; pmp: boolean; pcp: boolean };
  /** Which packet filter tool the OS side uses, as tailscaled names it (Linux only). */
  firewallMode?: string;
}

export type NetInfo = Record<string, unknown> & { PreferredDERP?: number };

export function buildNetInfo(homeDERP: number, f: NetFacts | undefined): NetInfo {
  if (!f) return { PreferredDERP: homeDERP };
  const latency: Record<string, number> = {};
  for (const [region, ms] of f.regionLatencyMs) latency[`${region}-v4`] = ms / 1000;
  return {
    ...(f.mappingVariesByDestIP === undefined ? {} : { MappingVariesByDestIP: f.mappingVariesByDestIP }),
    WorkingIPv6: f.workingIPv6,
    OSHasIPv6: f.osHasIPv6,
    WorkingUDP: f.udp,
    WorkingICMPv4: false, // no ICMP probe is made: no ICMP round trip completed, as tailscaled reports then
    ...(f.portMap ? { UPnP: f.portMap.upnp, PMP: f.portMap.pmp, PCP: f.portMap.pcp } : {}),
    PreferredDERP: homeDERP,
    ...(Object.keys(latency).length > 0 ? { DERPLatency: latency } : {}),
    ...(f.firewallMode ? { FirewallMode: f.firewallMode } : {}),
  };
}

/** The fields whose change is worth a Hostinfo update (latencies move all the time; tailscaled ignores them too). */
export function netInfoKey(n: NetInfo): string {
  const { DERPLatency: _latency, ...basic } = n;
  return JSON.stringify(basic);
}
