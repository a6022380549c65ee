// The rules of one address family, flattened into a few typed arrays so that a per-packet scan touches
// little memory and no objects: protocol bitsets, then source and destination prefixes with offsets.
import type { PacketInfo } from '../packet/parse.ts';
import { type IpPrefix, packPrefixes } from './prefix.ts';

/** One rule restricted to one family, before flattening. */
export interface FamilyRule {
  protos: Uint8Array; // 256 flags
  srcs: readonly IpPrefix[];
  srcCaps: readonly string[];
  dsts: ReadonlyArray<{ p: IpPrefix; first: number; last: number }>;
}

export type SrcCapCheck = (version: 4 | 6, src: Uint32Array, cap: string) => boolean;

const ALL_PORTS_LAST = 0xffff;

export class MatchTable {
  readonly count: number;
  /** 256-bit protocol set per rule, 8 words each. */
  private readonly protoBits: Uint32Array;
  /** Rule k's sources are srcs[srcStart[k] .. srcStart[k+1]) (stride 2 for IPv4, 8 for IPv6). */
  private readonly srcStart: Uint32Array;
  private readonly srcs: Uint32Array;
  /** Rule k's destinations are dsts[dstStart[k] .. dstStart[k+1]) (stride 4 for IPv4, 10 for IPv6). */
  private readonly dstStart: Uint32Array;
  private readonly dsts: Uint32Array;
  private readonly srcCaps: ReadonlyArray<readonly string[]>;
  private readonly anySrcCaps: boolean;

  constructor(
    readonly version: 4 | 6,
    rules: readonly FamilyRule[],
  ) {
    const n = rules.length;
    this.count = n;
    this.protoBits = new Uint32Array(n * 8);
    this.srcStart = new Uint32Array(n + 1);
    this.dstStart = new Uint32Array(n + 1);
    const srcParts: Uint32Array[] = [];
    const dstParts: Uint32Array[] = [];
    rules.forEach((r, k) => {
      for (let p = 0; p < 256; p++) if (r.protos[p]) this.protoBits[k * 8 + (p >> 5)] |= 1 << (p & 31);
      const s = packPrefixes(
        r.srcs.map((p) => ({ p })),
        version,
      );
      const d = packPrefixes(
        r.dsts.map((x) => ({ p: x.p, extra: [x.first, x.last] })),
        version,
      );
      srcParts.push(s);
      dstParts.push(d);
      this.srcStart[k + 1] = this.srcStart[k] + s.length;
      this.dstStart[k + 1] = this.dstStart[k] + d.length;
    });
    this.srcs = concat(srcParts, this.srcStart[n]);
    this.dsts = concat(dstParts, this.dstStart[n]);
    this.srcCaps = rules.map((r) => r.srcCaps);
    this.anySrcCaps = rules.some((r) => r.srcCaps.length > 0);
  }

  /** TCP SYN, UDP, SCTP: protocol listed, source matches, a destination holds dst and its port. */
  match(p: PacketInfo, hasCap: SrcCapCheck | null | undefined): boolean {
    return this.scan(p, hasCap, 0);
  }

  /** ICMP: source matches and a destination prefix holds dst; protocols and ports are ignored. */
  matchIPsOnly(p: PacketInfo, hasCap: SrcCapCheck | null | undefined): boolean {
    return this.scan(p, hasCap, 1);
  }

  /** Other protocols: protocol listed, source matches, a destination holds dst with ports exactly 0-65535. */
  matchProtoAllPorts(p: PacketInfo, hasCap: SrcCapCheck | null | undefined): boolean {
    return this.scan(p, hasCap, 2);
  }

  /** mode 0: ports in range; 1: any ports, any protocol; 2: all ports only. */
  private scan(p: PacketInfo, hasCap: SrcCapCheck | null | undefined, mode: 0 | 1 | 2): boolean {
    const v4 = this.version === 4;
    const dStride = v4 ? 4 : 10;
    const portAt = v4 ? 2 : 8;
    const word = p.proto >> 5;
    const bit = 1 << (p.proto & 31);
    const port = p.dstPort;
    const dsts = this.dsts;
    const dstStart = this.dstStart;
    const protoBits = this.protoBits;
    const dst = p.dst;
    for (let k = 0; k < this.count; k++) {
      if (mode !== 1 && (protoBits[k * 8 + word] & bit) === 0) continue;
      if (!this.srcMatches(k, p, hasCap)) continue;
      const end = dstStart[k + 1];
      for (let i = dstStart[k]; i < end; i += dStride) {
        const first = dsts[i + portAt];
        const last = dsts[i + portAt + 1];
        if (mode === 0 ? port < first || port > last : mode === 2 && (first !== 0 || last !== ALL_PORTS_LAST)) continue;
        if (v4) {
          if (((dst[0] ^ dsts[i]) & dsts[i + 1]) === 0) return true;
        } else if (
          ((dst[0] ^ dsts[i]) & dsts[i + 4]) === 0 &&
          ((dst[1] ^ dsts[i + 1]) & dsts[i + 5]) === 0 &&
          ((dst[2] ^ dsts[i + 2]) & dsts[i + 6]) === 0 &&
          ((dst[3] ^ dsts[i + 3]) & dsts[i + 7]) === 0
        ) {
          return true;
        }
      }
    }
    return false;
  }

  private srcMatches(k: number, p: PacketInfo, hasCap: SrcCapCheck | null | undefined): boolean {
    const srcs = this.srcs;
    const src = p.src;
    const end = this.srcStart[k + 1];
    if (this.version === 4) {
      const a = src[0];
      for (let i = this.srcStart[k]; i < end; i += 2) if (((a ^ srcs[i]) & srcs[i + 1]) === 0) return true;
    } else {
      for (let i = this.srcStart[k]; i < end; i += 8) {
        if (
          ((src[0] ^ srcs[i]) & srcs[i + 4]) === 0 &&
          ((src[1] ^ srcs[i + 1]) & srcs[i + 5]) === 0 &&
          ((src[2] ^ srcs[i + 2]) & srcs[i + 6]) === 0 &&
          ((src[3] ^ srcs[i + 3]) & srcs[i + 7]) === 0
        ) {
          return true;
        }
      }
    }
    if (!this.anySrcCaps || !hasCap) return false;
    const caps = this.srcCaps[k];
    for (let i = 0; i < caps.length; i++) if (hasCap(this.version, src, caps[i])) return true;
    return false;
  }
}

function concat(parts: readonly Uint32Array[], total: number): Uint32Array {
  const out = new Uint32Array(total);
  let off = 0;
  for (const part of parts) {
    out.set(part, off);
    off += part.length;
  }
  return out;
}
