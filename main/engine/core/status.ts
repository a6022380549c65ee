// Turns the netmap into the summaries the UI and CLI show. The netmap's fields are in shape (control/sanitize.ts);
// each summary is still made under a guard, so one peer the code did not foresee cannot fail every status call.
import type { NetMap } from '../control/netmap.ts';
import type { TailNode } from '../control/tailcfg.ts';
import { aeadFallbackReason, aeadImplementation } from '../crypto/aead.ts';
import type { CryptoStatus, PeerSummary, Prefs, RouteOffer, SelfNode } from '../protocol.ts';
import { advertisedRoutes } from '../routes/offer.ts';
import { canonicalCidr } from '../routes/prefix-set.ts';

function bareAddress(prefix: string): string {
  const slash = prefix.indexOf('/');
  return slash < 0 ? prefix : prefix.slice(0, slash);
}

function dnsNameOf(n: TailNode): string {
  const name = n.Name;
  if (typeof name !== 'string') return '';
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

function shortName(n: TailNode, dns: string): string {
  if (dns) {
    const dot = dns.indexOf('.');
    return dot < 0 ? dns : dns.slice(0, dot);
  }
  return typeof n.Hostinfo?.Hostname === 'string' ? n.Hostinfo.Hostname : `node-${n.ID}`;
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

/** The tailnet's name: the MagicDNS suffix of our name, else the netmap's domain. */
export function tailnetOf(nm: NetMap): string {
  const dnsName = nm.self ? dnsNameOf(nm.self) : '';
  return dnsName.includes('.') ? dnsName.slice(dnsName.indexOf('.') + 1) : nm.domain;
}

export function selfSummary(nm: NetMap): SelfNode | undefined {
  const n = nm.self;
  if (!n) return undefined;
  try {
    return selfSummaryOf(nm, n);
  } catch {
    return { id: n.ID, dnsName: '', name: `node-${n.ID}`, addresses: [], user: '', keyExpiry: undefined };
  }
}

function selfSummaryOf(nm: NetMap, n: TailNode): SelfNode {
  const dnsName = dnsNameOf(n);
  return {
    id: n.ID,
    dnsName,
    name: shortName(n, dnsName),
    addresses: (n.Addresses ?? []).map(bareAddress),
    user: userName(nm, n),
    keyExpiry: validTime(n.KeyExpiry),
  };
}

/** The peer's summary; a bare one (its id) when its entry cannot be read. */
function peerSummary(nm: NetMap, n: TailNode): PeerSummary {
  try {
    return peerSummaryOf(nm, n);
  } catch {
    return {
      id: n.ID,
      name: `node-${n.ID}`,
      dnsName: '',
      addresses: [],
      online: null,
      os: '',
      user: '',
      lastSeen: undefined,
      keyExpiry: undefined,
      expired: false,
      stableID: '',
      exitNodeOption: false,
      routes: [],
    };
  }
}

const DEFAULT_ROUTES = new Set(['0.0.0.0/0', '::/0']);

/** What the peer offers beyond its own addresses, from the routes control approved for it (its AllowedIPs). */
export function routeOffersOf(n: TailNode): { exitNodeOption: boolean; routes: string[] } {
  const own = new Set((n.Addresses ?? []).map(bareAddress));
  let v4Default = false;
  let v6Default = false;
  const routes: string[] = [];
  for (const p of n.AllowedIPs ?? []) {
    if (p === '0.0.0.0/0') v4Default = true;
    else if (p === '::/0') v6Default = true;
    else if (!own.has(bareAddress(p)) || !/\/(32|128)$/.test(p)) routes.push(p);
  }
  return { exitNodeOption: v4Default && v6Default, routes: routes.filter((p) => !DEFAULT_ROUTES.has(p)) };
}

function peerSummaryOf(nm: NetMap, n: TailNode): PeerSummary {
  const dnsName = dnsNameOf(n);
  return {
    id: n.ID,
    name: shortName(n, dnsName),
    dnsName,
    addresses: (n.Addresses ?? []).map(bareAddress),
    online: typeof n.Online === 'boolean' ? n.Online : null,
    os: typeof n.Hostinfo?.OS === 'string' ? n.Hostinfo.OS : '',
    user: userName(nm, n),
    lastSeen: validTime(n.LastSeen),
    keyExpiry: validTime(n.KeyExpiry),
    expired: keyExpired(n),
    stableID: typeof n.StableID === 'string' ? n.StableID : String(n.ID),
    ...routeOffersOf(n),
  };
}

// Summaries per peer object: the netmap replaces a peer's object whenever it changes, so a delta that
// touches one peer of 10,000 recomputes one summary. (Expiry is judged when the summary is made.)
const cache = new WeakMap<TailNode, { usersVersion: number; summary: PeerSummary }>();

export function peerSummaries(nm: NetMap): PeerSummary[] {
  const out: PeerSummary[] = [];
  for (const n of nm.peers.values()) {
    const hit = cache.get(n);
    if (hit && hit.usersVersion === nm.usersVersion) {
      out.push(hit.summary);
      continue;
    }
    const summary = peerSummary(nm, n);
    cache.set(n, { usersVersion: nm.usersVersion, summary });
    out.push(summary);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id - b.id));
}

/** Which AEAD the engine runs (the same for every session: chosen once, when crypto/aead.ts loads). */
export function cryptoStatus(): CryptoStatus {
  const reason = aeadFallbackReason();
  return reason === undefined ? { aead: aeadImplementation() } : { aead: aeadImplementation(), fallbackReason: reason };
}

/** What we advertise and, of it, what control approved: our own AllowedIPs beyond our addresses. */
export function routeOffer(prefs: Prefs, self: TailNode | undefined): RouteOffer {
  const advertised = advertisedRoutes(prefs);
  const own = new Set((self?.Addresses ?? []).map((a) => canonicalCidr(String(a))));
  const allowed = new Set(
    (self?.AllowedIPs ?? []).map((a) => canonicalCidr(String(a))).filter((a) => a !== undefined && !own.has(a)),
  );
  return { advertised, approved: advertised.filter((r) => allowed.has(r)) };
}
