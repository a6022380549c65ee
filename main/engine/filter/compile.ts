// Compiles the netmap's FilterRules (docs/protocol/services.md §5.1, §5.2) into per-family packed matches.
// Input is untrusted JSON: malformed entries are skipped and counted, nothing throws.
import type { FilterRule } from '../control/tailcfg.ts';
import { IPPROTO } from '../packet/parse.ts';
import { type CapGrantEntry, CompiledFilter, type FamilyCapMatch, type FilterStats } from './filter.ts';
import { type FamilyRule, MatchTable } from './match.ts';
import {
  type IpPrefix,
  packPrefixes,
  parseIpWords,
  parsePrefixText,
  parseRangeText,
  prefixesOverlap,
} from './prefix.ts';

/** Protocols a rule covers when IPProto is absent or empty. */
export const DEFAULT_PROTOS: readonly number[] = [IPPROTO.TCP, IPPROTO.UDP, IPPROTO.ICMP, IPPROTO.ICMPV6];

export interface CompileOptions {
  /**
   * AllowedIPs of peers marked UnsignedPeerAPIOnly. If any rule with destinations admits one of them,
   * the whole filter is discarded (tailscaled treats that as a broken or malicious control server).
   */
  unsignedPeerAPIOnly?: readonly string[];
}

interface Dst {
  p: IpPrefix;
  first: number;
  last: number;
}

interface RawMatch {
  protos: Uint8Array;
  srcs: IpPrefix[];
  srcCaps: string[];
  dsts: Dst[];
  caps: CapGrantEntry[];
}

type Problem = (why: string) => void;

/** Parses one SrcIPs / DstPorts.IP entry: "*", CIDR (host bits must be zero), "a-b" or a plain IP. */
export function parseIPSet(text: string): IpPrefix[] | null {
  if (text === '*') {
    return [
      { version: 4, words: new Uint32Array(4), bits: 0 },
      { version: 6, words: new Uint32Array(4), bits: 0 },
    ];
  }
  if (text.includes('/')) {
    const p = parsePrefixText(text, true);
    return p ? [p] : null;
  }
  if (text.includes('-')) return parseRangeText(text);
  const ip = parseIpWords(text);
  return ip ? [{ version: ip.version, words: ip.words, bits: ip.version === 4 ? 32 : 128 }] : null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPort(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
}

function parseProtos(raw: unknown, problem: Problem): Uint8Array {
  const protos = new Uint8Array(256);
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    for (const p of DEFAULT_PROTOS) protos[p] = 1;
    return protos;
  }
  if (!Array.isArray(raw)) {
    problem('IPProto is not a list');
    return protos;
  }
  for (const n of raw) {
    if (Number.isInteger(n) && n >= 0 && n <= 255) protos[n] = 1;
    else problem(`IPProto value ${JSON.stringify(n)} ignored`);
  }
  return protos;
}

function parseSrcs(raw: unknown, m: RawMatch, problem: Problem): void {
  if (raw === undefined || raw === null) return;
  if (!Array.isArray(raw)) {
    problem('SrcIPs is not a list');
    return;
  }
  for (const s of raw) {
    if (typeof s !== 'string') {
      problem('SrcIPs entry is not a string');
    } else if (s.startsWith('cap:')) {
      m.srcCaps.push(s.slice(4));
    } else {
      const set = parseIPSet(s);
      if (set) m.srcs.push(...set);
      else problem(`bad SrcIPs entry ${JSON.stringify(s)}`);
    }
  }
}

/** Returns false when the deprecated Bits field means the whole filter must be rejected. */
function parseDsts(raw: unknown, m: RawMatch, problem: Problem): boolean {
  if (raw === undefined || raw === null) return true;
  if (!Array.isArray(raw)) {
    problem('DstPorts is not a list');
    return true;
  }
  for (const d of raw) {
    if (!isRecord(d)) {
      problem('DstPorts entry is not an object');
      continue;
    }
    if (d.Bits !== undefined && d.Bits !== null) return false;
    const ports = d.Ports;
    if (typeof d.IP !== 'string' || !isRecord(ports) || !isPort(ports.First) || !isPort(ports.Last)) {
      problem('malformed DstPorts entry');
      continue;
    }
    if (ports.First > ports.Last) {
      problem(`empty port range ${ports.First}-${ports.Last}`);
      continue;
    }
    const set = d.IP.startsWith('cap:') ? null : parseIPSet(d.IP);
    if (!set) {
      problem(`bad DstPorts IP ${JSON.stringify(d.IP)}`);
      continue;
    }
    for (const p of set) m.dsts.push({ p, first: ports.First, last: ports.Last });
  }
  return true;
}

function parseCapGrants(raw: unknown, m: RawMatch, problem: Problem): void {
  if (raw === undefined || raw === null) return;
  if (!Array.isArray(raw)) {
    problem('CapGrant is not a list');
    return;
  }
  for (const g of raw) {
    if (!isRecord(g) || !Array.isArray(g.Dsts)) {
      problem('malformed CapGrant entry');
      continue;
    }
    const caps = Array.isArray(g.Caps) ? g.Caps : [];
    const capMap = isRecord(g.CapMap) ? g.CapMap : {};
    for (const ds of g.Dsts) {
      const dst = typeof ds === 'string' ? parsePrefixText(ds, false) : null;
      if (!dst) {
        problem(`bad CapGrant Dsts entry ${JSON.stringify(ds)}`);
        continue;
      }
      for (const cap of caps) {
        if (typeof cap === 'string') m.caps.push({ dst, cap, values: [] });
        else problem('CapGrant Caps entry is not a string');
      }
      for (const [cap, values] of Object.entries(capMap)) {
        if (values === null || Array.isArray(values)) m.caps.push({ dst, cap, values: values ?? [] });
        else problem(`CapGrant CapMap[${JSON.stringify(cap)}] is not a list`);
      }
    }
  }
}

function familyRule(m: RawMatch, v: 4 | 6): FamilyRule | null {
  const srcs = m.srcs.filter((p) => p.version === v);
  const dsts = m.dsts.filter((d) => d.p.version === v);
  if (dsts.length === 0 || (srcs.length === 0 && m.srcCaps.length === 0)) return null;
  return { protos: m.protos, srcs, srcCaps: m.srcCaps, dsts };
}

function familyCaps(m: RawMatch, v: 4 | 6): FamilyCapMatch | null {
  if (m.caps.length === 0) return null;
  const srcs = m.srcs.filter((p) => p.version === v).map((p) => ({ p }));
  return srcs.length ? { srcs: packPrefixes(srcs, v), grants: m.caps } : null;
}

/** Compiles the effective rule list. `null`/`undefined` compiles to an empty (no-rules) filter. */
export function compileFilter(
  rules: readonly FilterRule[] | null | undefined,
  opts: CompileOptions = {},
): CompiledFilter {
  const stats: FilterStats = { rules: 0, skipped: 0, firstError: '', rejected: '' };
  const problem: Problem = (why) => {
    stats.skipped++;
    if (!stats.firstError) stats.firstError = why;
  };
  const reject = (why: string): CompiledFilter => CompiledFilter.empty({ ...stats, rejected: why });
  const raw: RawMatch[] = [];
  if (rules !== null && rules !== undefined && !Array.isArray(rules)) problem('rule list is not a list');
  for (const r of Array.isArray(rules) ? (rules as readonly unknown[]) : []) {
    stats.rules++;
    if (!isRecord(r)) {
      problem('rule is not an object');
      continue;
    }
    if (Array.isArray(r.SrcBits) && r.SrcBits.length > 0) return reject('deprecated SrcBits present');
    const m: RawMatch = { protos: parseProtos(r.IPProto, problem), srcs: [], srcCaps: [], dsts: [], caps: [] };
    parseSrcs(r.SrcIPs, m, problem);
    if (!parseDsts(r.DstPorts, m, problem)) return reject('deprecated DstPorts Bits present');
    parseCapGrants(r.CapGrant, m, problem);
    raw.push(m);
  }

  const unsigned = (opts.unsignedPeerAPIOnly ?? []).map((t) => parsePrefixText(t, false));
  if (unsigned.some((u) => u && raw.some((m) => m.dsts.length > 0 && m.srcs.some((s) => prefixesOverlap(s, u))))) {
    return reject('a rule admits an UnsignedPeerAPIOnly peer');
  }

  const m4: FamilyRule[] = [];
  const m6: FamilyRule[] = [];
  const c4: FamilyCapMatch[] = [];
  const c6: FamilyCapMatch[] = [];
  for (const m of raw) {
    const a = familyRule(m, 4);
    const b = familyRule(m, 6);
    const ca = familyCaps(m, 4);
    const cb = familyCaps(m, 6);
    if (a) m4.push(a);
    if (b) m6.push(b);
    if (ca) c4.push(ca);
    if (cb) c6.push(cb);
  }
  return new CompiledFilter(new MatchTable(4, m4), new MatchTable(6, m6), c4, c6, stats);
}
