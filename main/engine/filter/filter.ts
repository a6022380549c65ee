// The netmap packet filter at run time (docs/protocol/services.md §5.3, §5.4). checkInbound/checkOutbound run per
// packet: integer prefix matching over flat u32 tables (match.ts), no allocation.
import { IPPROTO, type PacketInfo } from '../packet/parse.ts';
import type { FlowTable } from './conntrack.ts';
import { MatchTable, type SrcCapCheck } from './match.ts';
import { type AddrSet, type IpPrefix, packedContains, parseIpWords } from './prefix.ts';

export type Verdict = 'accept' | 'drop';

export interface CapGrantEntry {
  readonly dst: IpPrefix;
  readonly cap: string;
  readonly values: readonly unknown[];
}

/** A CapGrant rule restricted to sources of one family (docs/protocol/services.md §5.5). */
export interface FamilyCapMatch {
  readonly srcs: Uint32Array;
  readonly grants: readonly CapGrantEntry[];
}

export interface FilterStats {
  /** Rules seen. */
  rules: number;
  /** Entries (SrcIPs, DstPorts, IPProto values, CapGrant parts, whole rules) skipped as malformed. */
  skipped: number;
  /** First problem found, for a health message; '' when none. */
  firstError: string;
  /** Why the whole filter was discarded (deprecated SrcBits/Bits, unsigned peer allowed); '' when not. */
  rejected: string;
}

/** What the filter needs to know about this node; keep one object and update it on netmap changes. */
export interface FilterEnv {
  /** Destinations that are "local": own addresses and advertised routes. Empty (no netmap) drops everything. */
  local: AddrSet;
  /** UDP/SCTP reply tracking, shared across filter updates. Absent: no reply admission. */
  conntrack?: FlowTable | null;
  /** For `cap:` sources: whether the node owning this source address has the node capability. */
  srcHasCap?: SrcCapCheck | null;
  /** Our PeerAPI listeners: a TCP SYN to one of these addresses on its port is always accepted. */
  peerApi?: { addrs: AddrSet; port4: number; port6: number } | null;
}

export class CompiledFilter {
  /** A short constant string saying why the last check decided what it did (for logs and counters). */
  lastReason = '';

  constructor(
    readonly matches4: MatchTable,
    readonly matches6: MatchTable,
    readonly caps4: readonly FamilyCapMatch[],
    readonly caps6: readonly FamilyCapMatch[],
    readonly stats: FilterStats,
  ) {}

  /** A filter with no rules: only replies, non-SYN TCP, conntracked UDP and TSMP get in (shields up, jailed peer). */
  static empty(stats?: Partial<FilterStats>): CompiledFilter {
    const none = { rules: 0, skipped: 0, firstError: '', rejected: '', ...stats };
    return new CompiledFilter(new MatchTable(4, []), new MatchTable(6, []), [], [], none);
  }

  /** Verdict for a packet arriving from WireGuard (after the AllowedIPs source check). */
  checkInbound(p: PacketInfo, env: FilterEnv): Verdict {
    const pre = this.pre(p);
    if (pre !== null) return pre;
    const v = p.version as 4 | 6;
    if (!env.local.has(v, p.dst)) return this.verdict('drop', 'destination not local');
    const r = this.runIn(p, v, env);
    if (r === 'drop' && env.peerApi && p.proto === IPPROTO.TCP && (p.tcpFlags & 0x02) !== 0) {
      const port = v === 4 ? env.peerApi.port4 : env.peerApi.port6;
      if (port !== 0 && p.dstPort === port && env.peerApi.addrs.has(v, p.dst)) return this.verdict('accept', 'peerapi');
    }
    return r;
  }

  /** Verdict for a packet leaving towards WireGuard; records UDP/SCTP flows so their replies get in. */
  checkOutbound(p: PacketInfo, env: FilterEnv): Verdict {
    const pre = this.pre(p);
    if (pre !== null) return pre;
    if ((p.proto === IPPROTO.UDP || p.proto === IPPROTO.SCTP) && env.conntrack) env.conntrack.recordOutbound(p);
    return this.verdict('accept', 'outbound');
  }

  /** Peer capabilities src has towards dst, from CapGrant rules (docs/protocol/services.md §5.5). Not for the hot path. */
  capsWithValues(src: string, dst: string): Map<string, unknown[]> {
    const out = new Map<string, unknown[]>();
    const s = parseIpWords(src);
    const d = parseIpWords(dst);
    if (!s || !d) return out;
    for (const m of s.version === 4 ? this.caps4 : this.caps6) {
      if (!packedContains(m.srcs, s.version, s.version === 4 ? 2 : 8, s.words)) continue;
      for (const g of m.grants) {
        if (!g.cap || !prefixHas(g.dst, d.version, d.words)) continue;
        const prev = out.get(g.cap);
        if (prev) prev.push(...g.values);
        else out.set(g.cap, [...g.values]);
      }
    }
    return out;
  }

  private verdict(v: Verdict, why: string): Verdict {
    this.lastReason = why;
    return v;
  }

  /** Direction-agnostic pre-checks (docs/protocol/services.md §5.3 step 1); null means "no verdict yet". */
  private pre(p: PacketInfo): Verdict | null {
    if (p.status === 'empty') return this.verdict('accept', 'keepalive');
    if (p.status !== 'ok' || p.length < 20) return this.verdict('drop', p.error || 'malformed');
    if (isMulticast(p)) return this.verdict('drop', 'multicast');
    if (isLinkLocalUnicast(p)) return this.verdict('drop', 'link-local');
    if (p.fragment) return this.verdict('accept', 'fragment');
    return null;
  }

  private runIn(p: PacketInfo, v: 4 | 6, env: FilterEnv): Verdict {
    const ms = v === 4 ? this.matches4 : this.matches6;
    const proto = p.proto;
    if (proto === (v === 4 ? IPPROTO.ICMP : IPPROTO.ICMPV6)) {
      if (isIcmpReplyOrError(p, v)) return this.verdict('accept', 'icmp response');
      if (ms.matchIPsOnly(p, env.srcHasCap)) return this.verdict('accept', 'icmp ok');
      return this.verdict('drop', 'no rules matched');
    }
    switch (proto) {
      case IPPROTO.TCP:
        if (!p.isTcpSyn) return this.verdict('accept', 'tcp non-syn');
        if (ms.match(p, env.srcHasCap)) return this.verdict('accept', 'tcp ok');
        return this.verdict('drop', 'tcp syn: no rules matched');
      case IPPROTO.UDP:
      case IPPROTO.SCTP:
        if (env.conntrack?.hasInbound(p)) return this.verdict('accept', 'conntrack');
        if (ms.match(p, env.srcHasCap)) return this.verdict('accept', 'ok');
        return this.verdict('drop', 'no rules matched');
      case IPPROTO.TSMP:
        return this.verdict('accept', 'tsmp');
      default:
        if (ms.matchProtoAllPorts(p, env.srcHasCap)) return this.verdict('accept', 'other proto ok');
        return this.verdict('drop', 'other proto: no rules matched');
    }
  }
}

function isMulticast(p: PacketInfo): boolean {
  const d = p.dst;
  if (p.version === 4) return d[0] >>> 28 === 0xe;
  if (d[0] >>> 24 === 0xff) return true;
  return isV4Mapped(d) && d[3] >>> 28 === 0xe;
}

const METADATA_V4 = 0xa9fea9fe; // 169.254.169.254, reachable in clouds

function isLinkLocalUnicast(p: PacketInfo): boolean {
  const d = p.dst;
  if (p.version === 4) return d[0] >>> 16 === 0xa9fe && d[0] !== METADATA_V4;
  if (d[0] >>> 22 === 0x3fa) return true; // fe80::/10
  return isV4Mapped(d) && d[3] >>> 16 === 0xa9fe;
}

function isV4Mapped(d: Uint32Array): boolean {
  return d[0] === 0 && d[1] === 0 && d[2] === 0xffff;
}

function isIcmpReplyOrError(p: PacketInfo, v: 4 | 6): boolean {
  if (p.transportLength < 8) return false;
  const t = p.icmpType;
  if (v === 4) return (t === 0 && p.icmpCode === 0) || t === 3 || t === 11 || t === 12;
  return (t === 129 && p.icmpCode === 0) || t === 1 || t === 2 || t === 3 || t === 4;
}

function prefixHas(pfx: IpPrefix, version: 4 | 6, ip: Uint32Array): boolean {
  if (pfx.version !== version) return false;
  for (let w = 0, left = pfx.bits; w < 4 && left > 0; w++, left -= 32) {
    const mask = left >= 32 ? 0xffffffff : (0xffffffff << (32 - left)) >>> 0;
    if (((ip[w] ^ pfx.words[w]) & mask) !== 0) return false;
  }
  return true;
}
