// The network map: what the control server has told us, kept up to date by applying each MapResponse as
// the delta it is (docs/protocol/control.md §6.2). Input is untrusted JSON: malformed entries are skipped and counted,
// never thrown on, so one bad peer cannot take the map down; fields of the wrong shape are dropped (sanitize.ts).
import { sanitizeNode, sanitizeRegion, sanitizeUser } from './sanitize.ts';
import type {
  DERPMap,
  DERPRegion,
  DNSConfig,
  FilterRule,
  MapResponse,
  PeerChange,
  TailNode,
  UserProfile,
} from './tailcfg.ts';

const LEGACY_DERP = /^127\.3\.3\.40:(\d+)$/;

function isNode(v: unknown): v is TailNode {
  return typeof v === 'object' && v !== null && Number.isSafeInteger((v as TailNode).ID);
}

/** Fills in what older servers leave out: HomeDERP from the legacy DERP string, AllowedIPs from Addresses. */
function normalizeNode(n: TailNode): TailNode {
  if (!n.HomeDERP && typeof n.DERP === 'string') {
    const m = LEGACY_DERP.exec(n.DERP);
    if (m) n.HomeDERP = Number(m[1]);
  }
  if (n.AllowedIPs == null && Array.isArray(n.Addresses)) n.AllowedIPs = n.Addresses;
  if (!Array.isArray(n.Addresses)) n.Addresses = [];
  return n;
}

export class NetMap {
  self: TailNode | undefined;
  readonly peers = new Map<number, TailNode>();
  readonly users = new Map<number, UserProfile>();
  derpMap: DERPMap = { Regions: {} };
  dns: DNSConfig | undefined;
  domain = '';
  private readonly filterChunks = new Map<string, FilterRule[]>();
  /** Malformed entries skipped so far (for health and tests). */
  skipped = 0;
  /** Messages applied (keep-alives excluded). */
  version = 0;
  /** Bumped when user profiles change, so cached peer summaries know their user names may be stale. */
  usersVersion = 0;

  /** Applies one MapResponse. Returns false for a keep-alive that changed nothing. */
  apply(m: MapResponse): boolean {
    const onlyKeepAlive =
      m.KeepAlive === true &&
      Object.keys(m).every((k) => k === 'KeepAlive' || k === 'ControlTime' || k === 'PingRequest');
    if (onlyKeepAlive) return false;
    if (m.Node !== undefined) {
      if (isNode(m.Node)) this.self = this.normalize(m.Node);
      else this.skipped++;
    }
    if (m.DERPMap && typeof m.DERPMap === 'object') this.applyDERPMap(m.DERPMap);
    if (m.DNSConfig && typeof m.DNSConfig === 'object') this.dns = m.DNSConfig;
    if (typeof m.Domain === 'string' && m.Domain !== '') this.domain = m.Domain;
    if (Array.isArray(m.UserProfiles)) {
      for (const u of m.UserProfiles) {
        if (u && typeof u === 'object' && Number.isSafeInteger(u.ID)) {
          this.skipped += sanitizeUser(u);
          this.users.set(u.ID, u);
        } else this.skipped++;
      }
      this.usersVersion++;
    }
    if (Array.isArray(m.Peers) && m.Peers.length > 0) {
      this.peers.clear();
      for (const p of m.Peers) this.upsert(p);
    } else {
      if (Array.isArray(m.PeersRemoved)) for (const id of m.PeersRemoved) this.peers.delete(id);
      if (Array.isArray(m.PeersChanged)) for (const p of m.PeersChanged) this.upsert(p);
      if (m.PeerSeenChange && typeof m.PeerSeenChange === 'object') {
        for (const [id, seen] of Object.entries(m.PeerSeenChange)) {
          const p = this.changing(Number(id));
          if (p) p.LastSeen = seen ? new Date().toISOString() : null;
        }
      }
      if (m.OnlineChange && typeof m.OnlineChange === 'object') {
        for (const [id, online] of Object.entries(m.OnlineChange)) {
          const p = this.changing(Number(id));
          if (p) p.Online = online === true;
        }
      }
      if (Array.isArray(m.PeersChangedPatch)) for (const c of m.PeersChangedPatch) this.patch(c);
    }
    if (m.PacketFilter != null && Array.isArray(m.PacketFilter)) this.filterChunks.set('base', m.PacketFilter);
    if (m.PacketFilters && typeof m.PacketFilters === 'object') {
      if ('*' in m.PacketFilters && m.PacketFilters['*'] === null) this.filterChunks.clear();
      for (const [name, rules] of Object.entries(m.PacketFilters)) {
        if (name === '*') continue;
        if (rules === null) this.filterChunks.delete(name);
        else if (Array.isArray(rules)) this.filterChunks.set(name, rules);
      }
    }
    this.version++;
    return true;
  }

  /** The effective packet filter: chunks concatenated in name order. */
  packetFilter(): FilterRule[] {
    return [...this.filterChunks.keys()].sort().flatMap((k) => this.filterChunks.get(k) ?? []);
  }

  private upsert(p: unknown): void {
    if (!isNode(p)) {
      this.skipped++;
      return;
    }
    this.peers.set(p.ID, this.normalize(p));
  }

  /** A node from the server with its fields in shape (fixes counted in skipped) and older servers' gaps filled. */
  private normalize(n: TailNode): TailNode {
    this.skipped += sanitizeNode(n);
    return normalizeNode(n);
  }

  /**
   * The peer about to be changed in place, as a fresh copy: a changed peer is a new object, so
   * anything cached per peer object (summaries) sees the change.
   */
  private changing(id: number): TailNode | undefined {
    const p = this.peers.get(id);
    if (!p) return undefined;
    const copy = { ...p };
    this.peers.set(id, copy);
    return copy;
  }

  private patch(c: PeerChange): void {
    if (!c || !Number.isSafeInteger(c.NodeID)) {
      this.skipped++;
      return;
    }
    const p = this.changing(c.NodeID);
    if (!p) return; // unknown node: ignore, as the Go client does
    if (c.DERPRegion) p.HomeDERP = c.DERPRegion;
    if (c.Cap) p.Cap = c.Cap;
    if (Array.isArray(c.Endpoints)) p.Endpoints = c.Endpoints;
    if (typeof c.Key === 'string') p.Key = c.Key;
    if (typeof c.DiscoKey === 'string') p.DiscoKey = c.DiscoKey;
    if (typeof c.Online === 'boolean') p.Online = c.Online;
    if (typeof c.LastSeen === 'string') p.LastSeen = c.LastSeen;
    if (typeof c.KeyExpiry === 'string') p.KeyExpiry = c.KeyExpiry;
    if (c.CapMap && typeof c.CapMap === 'object') p.CapMap = c.CapMap;
    this.skipped += sanitizeNode(p);
  }

  private applyDERPMap(d: DERPMap): void {
    if (d.Regions == null) return; // nil Regions: unchanged
    const regions: Record<string, DERPRegion> = {};
    for (const [id, r] of Object.entries(d.Regions)) {
      if (r && typeof r === 'object' && Number.isSafeInteger(r.RegionID)) {
        this.skipped += sanitizeRegion(r);
        regions[id] = r;
      } else if (r !== null) this.skipped++;
    }
    this.derpMap = { ...this.derpMap, ...d, Regions: regions };
  }
}
