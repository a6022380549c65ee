// Quad-100 in the packet path (docs/protocol/services.md §3.4.1): UDP to 100.100.100.100:53 or [fd7a:115c:a1e0::53]:53 read
// from the TUN is answered here and never sent to a peer; the reply goes back into the TUN from that address.
// Only this node's own tailnet addresses may ask: with IP forwarding on, packets routed through us from LAN hosts
// leave the TUN too, and answering them would make quad-100 an open resolver for the LAN.
// It must not slow the packet path it sits in: an answer known from the netmap is queued on the TUN and written
// with the rest of the batch (one write for the batch, not one per answer), built from the query's own bytes, and
// the encoded answer to a query asked before is reused until the netmap changes.
import { parseIpWords } from '../filter/prefix.ts';
import { IPPROTO, type PacketInfo } from '../packet/parse.ts';
import { DnsForwarder } from './forwarder.ts';
import { Quad100Tcp } from './quad100-tcp.ts';
import { udpReplyPacket } from './reply-packet.ts';
import { answerQuery, servfailFor, truncatedReply } from './resolver.ts';
import { buildDnsTable, type DnsTable } from './table.ts';

const V4_WORD = 0x64646464; // 100.100.100.100
const V6_WORDS = [0xfd7a115c, 0xa1e00000, 0, 0x53]; // fd7a:115c:a1e0::53
/** Answers kept for reuse; past this many the cache starts over (a stub asks for few names, and often). */
const ANSWER_CACHE_MAX = 1024;

export interface Quad100Counters {
  queries: number;
  forwarded: number;
  /** Queries dropped unanswered (no header to reply to). */
  dropped: number;
  /** Packets dropped because their source is not one of our own addresses. */
  foreign: number;
}

export class Quad100 {
  #table: DnsTable = buildDnsTable(undefined, [], undefined);
  /** A query's bytes after its ID (latin1) → the answer's bytes, ID included (rewritten on reuse). */
  private readonly answers = new Map<string, Uint8Array>();
  /** Answers queued on the TUN since the last flushReplies(). */
  private queued = false;
  private readonly forwarder = new DnsForwarder();
  readonly counters: Quad100Counters = { queries: 0, forwarded: 0, dropped: 0, foreign: 0 };
  /** Our own addresses as words, compared on each packet without allocating: IPv4 one word each, IPv6 four. */
  private own4 = new Uint32Array(0);
  private own6 = new Uint32Array(0);

  private readonly tcp: Quad100Tcp;

  /**
   * @param queueReply puts an IP packet into the TUN's queue.
   * @param flush writes the TUN's queue out: at once for an answer that waited on an upstream resolver or came over
   *   TCP; for the rest, in flushReplies() at the end of the TUN's batch.
   */
  constructor(
    private readonly queueReply: (pkt: Uint8Array) => void,
    private readonly flush: () => void = () => {},
  ) {
    this.tcp = new Quad100Tcp(
      (query) => this.resolveForTcp(query),
      (pkt) => this.writeNow(pkt),
    );
  }

  get table(): DnsTable {
    return this.#table;
  }

  /** A new table (netmap or OS resolvers changed): the answers kept from the old one go. */
  set table(t: DnsTable) {
    this.#table = t;
    this.answers.clear();
  }

  /** Writes out the answers queued during the TUN batch that just ended (nothing when there were none). */
  flushReplies(): void {
    if (!this.queued) return;
    this.queued = false;
    this.flush();
  }

  private writeNow(pkt: Uint8Array): void {
    this.queueReply(pkt);
    this.queued = false;
    this.flush();
  }

  /** This node's tailnet addresses ("100.64.0.1/32" or bare), the only sources answered; unparsable ones skipped. */
  setOwnAddresses(addresses: readonly string[]): void {
    const v4: number[] = [];
    const v6: number[] = [];
    for (const a of addresses) {
      const ip = typeof a === 'string' ? parseIpWords(a.split('/')[0] ?? '') : null;
      if (ip?.version === 4) v4.push(ip.words[0]);
      else if (ip?.version === 6) v6.push(...ip.words);
    }
    this.own4 = Uint32Array.from(v4);
    this.own6 = Uint32Array.from(v6);
  }

  /** Whether the packet's source is one of our own addresses (no allocation). */
  fromOwnAddress(p: PacketInfo): boolean {
    const s = p.src;
    if (p.version === 4) {
      for (let i = 0; i < this.own4.length; i++) if (this.own4[i] === s[0]) return true;
      return false;
    }
    const o = this.own6;
    for (let i = 0; i + 3 < o.length; i += 4) {
      if (o[i] === s[0] && o[i + 1] === s[1] && o[i + 2] === s[2] && o[i + 3] === s[3]) return true;
    }
    return false;
  }

  /** One query that came over TCP: the answer (never truncated), SERVFAIL when forwarding fails. */
  private async resolveForTcp(query: Uint8Array): Promise<Uint8Array | undefined> {
    this.counters.queries++;
    const outcome = answerQuery(query, this.table, 'tcp');
    if (outcome.kind === 'drop') {
      this.counters.dropped++;
      return undefined;
    }
    if (outcome.kind === 'reply') return outcome.packet;
    this.counters.forwarded++;
    return (await this.forwarder.forward(outcome.query, outcome.resolvers)) ?? servfailFor(query);
  }

  /** A parsed packet from the TUN for quad-100's DNS port (a cheap test on the hot path: no allocation). */
  static isFor(p: PacketInfo): boolean {
    if ((p.proto !== IPPROTO.UDP && p.proto !== IPPROTO.TCP) || p.dstPort !== 53 || p.fragment) return false;
    const d = p.dst;
    if (p.version === 4) return d[0] === V4_WORD;
    return d[0] === V6_WORDS[0] && d[1] === V6_WORDS[1] && d[2] === V6_WORDS[2] && d[3] === V6_WORDS[3];
  }

  /** A packet for which isFor(p) holds: answered when it comes from one of our addresses, else dropped. */
  handle(pkt: Uint8Array, p: PacketInfo): void {
    if (!this.fromOwnAddress(p)) {
      this.counters.foreign++;
      return;
    }
    if (p.proto === IPPROTO.TCP) {
      this.tcp.handle(pkt, p);
      return;
    }
    this.counters.queries++;
    const start = p.transportOffset + 8;
    const end = p.transportOffset + p.transportLength;
    // The key leaves out the ID; a query too short for a header is never answered, so never kept.
    const key = end - start >= 12 ? latin1(pkt, start + 2, end) : '';
    const known = key ? this.answers.get(key) : undefined;
    if (known) {
      known[0] = pkt[start];
      known[1] = pkt[start + 1];
      this.queue(udpReplyPacket(pkt, p.version, p.srcPort, known));
      return;
    }
    const query = pkt.slice(start, end);
    const outcome = answerQuery(query, this.#table);
    if (outcome.kind === 'drop') {
      this.counters.dropped++;
      return;
    }
    if (outcome.kind === 'reply') {
      if (this.answers.size >= ANSWER_CACHE_MAX) this.answers.clear();
      if (key) this.answers.set(key, outcome.packet);
      this.queue(udpReplyPacket(pkt, p.version, p.srcPort, outcome.packet));
      return;
    }
    this.counters.forwarded++;
    // What addresses the answer that comes later: the query's IP header (pkt is the TUN's buffer, p is reused).
    const headers = pkt.slice(0, start);
    const version = p.version;
    const port = p.srcPort;
    void this.forwarder.forward(outcome.query, outcome.resolvers).then((answer) => {
      const fits = answer && answer.length <= outcome.maxSize;
      const dns = !answer ? servfailFor(query) : fits ? answer : truncatedReply(answer, query);
      this.writeNow(udpReplyPacket(headers, version, port, dns));
    });
  }

  private queue(ip: Uint8Array): void {
    this.queueReply(ip);
    this.queued = true;
  }
}

function latin1(b: Uint8Array, from: number, to: number): string {
  return Buffer.from(b.buffer, b.byteOffset + from, to - from).toString('latin1');
}
