// Turns the netmap into the summaries the UI and CLI show.
import type { NetMap } from './control/netmap.ts';
import type { TailNode } from './control/tailcfg.ts';
import type { PeerSummary, SelfNode } from './protocol.ts';

function bareAddress(prefix: string): string {
  const slash = prefix.indexOf('/');
  return slash < 0 ? prefix : prefix.slice(0, slash);
}

function dnsNameOf(n: TailNode): string {
  return typeof n.Name === 'string' ? n.Name.replace(/\.$/, '') : '';
}

function shortName(n: TailNode): string {
  const dns = dnsNameOf(n);
  return dns ? dns.split('.')[0] : (n.Hostinfo?.Hostname ?? `node-${n.ID}`);
}

function userName(nm: NetMap, n: TailNode): string {
  const u = typeof n.User === 'number' ? nm.users.get(n.User) : undefined;
  return u?.LoginName ?? u?.DisplayName ?? '';
}

function validTime(t: unknown): string | undefined {
  return typeof t === 'string' && t !== '' && !t.startsWith('0001-') ? t : undefined;
}

export function keyExpired(n: TailNode, now = Date.now()): boolean {
  if (n.Expired === true) return true;
  const exp = validTime(n.KeyExpiry);
  return exp !== undefined && Date.parse(exp) <= now;
}

export function selfSummary(nm: NetMap): SelfNode | undefined {
  const n = nm.self;
  if (!n) return undefined;
  return {
    id: n.ID,
    dnsName: dnsNameOf(n),
    name: shortName(n),
    addresses: (n.Addresses ?? []).map(bareAddress),
    user: userName(nm, n),
    keyExpiry: validTime(n.KeyExpiry),
  };
}

export function peerSummaries(nm: NetMap): PeerSummary[] {
  const out: PeerSummary[] = [];
  for (const n of nm.peers.values()) {
    out.push({
      id: n.ID,
      name: shortName(n),
      dnsName: dnsNameOf(n),
      addresses: (n.Addresses ?? []).map(bareAddress),
      online: typeof n.Online === 'boolean' ? n.Online : null,
      os: typeof n.Hostinfo?.OS === 'string' ? n.Hostinfo.OS : '',
      user: userName(nm, n),
      lastSeen: validTime(n.LastSeen),
      keyExpiry: validTime(n.KeyExpiry),
      expired: keyExpired(n),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);
}
