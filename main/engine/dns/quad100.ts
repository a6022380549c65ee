// Quad-100 in the packet path (services.md §3.4.1): UDP to 100.100.100.100:53 or [fd7a:115c:a1e0::53]:53 read
// from the TUN is answered here and never sent to a peer; the reply goes back into the TUN from that address.
import { buildIpPacket, udpDatagram } from '../packet/build.ts';
import { formatPacketAddress, IPPROTO, type PacketInfo } from '../packet/parse.ts';
import { DnsForwarder } from './forwarder.ts';
import { Quad100Tcp } from './quad100-tcp.ts';
import { answerQuery, QUAD100_V4, QUAD100_V6, servfailFor, truncatedReply } from './resolver.ts';
import { buildDnsTable, type DnsTable } from './table.ts';

const V4_WORD = 0x64646464; // 100.100.100.100
const V6_WORDS = [0xfd7a115c, 0xa1e00000, 0, 0x53]; // fd7a:115c:a1e0::53

export interface Quad100Counters {
  queries: number;
  forwarded: number;
  /** Queries dropped unanswered (no header to reply to). */
  dropped: number;
}

export class Quad100 {
  table: DnsTable = buildDnsTable(undefined, [], undefined);
  private readonly forwarder = new DnsForwarder();
  readonly counters: Quad100Counters = { queries: 0, forwarded: 0, dropped: 0 };

  private readonly tcp: Quad100Tcp;

  /** @param writeReply puts an IP packet into the TUN (and flushes it). */
  constructor(private readonly writeReply: (pkt: Uint8Array) => void) {
    this.tcp = new Quad100Tcp((query) => this.resolveForTcp(query), writeReply);
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

  handle(pkt: Uint8Array, p: PacketInfo): void {
    if (p.proto === IPPROTO.TCP) {
      this.tcp.handle(pkt, p);
      return;
    }
    this.counters.queries++;
    const query = pkt.slice(p.transportOffset + 8, p.transportOffset + p.transportLength);
    const client = { addr: formatPacketAddress(p, 'src'), port: p.srcPort, v6: p.version === 6 };
    const outcome = answerQuery(query, this.table);
    if (outcome.kind === 'drop') {
      this.counters.dropped++;
      return;
    }
    if (outcome.kind === 'reply') {
      this.send(client, outcome.packet);
      return;
    }
    this.counters.forwarded++;
    void this.forwarder.forward(outcome.query, outcome.resolvers).then((answer) => {
      if (!answer) this.send(client, servfailFor(query));
      else this.send(client, answer.length <= outcome.maxSize ? answer : truncatedReply(answer, query));
    });
  }

  private send(client: { addr: string; port: number; v6: boolean }, dns: Uint8Array): void {
    const ip = buildIpPacket(
      { src: client.v6 ? QUAD100_V6 : QUAD100_V4, dst: client.addr, proto: IPPROTO.UDP },
      udpDatagram(53, client.port, dns),
    );
    this.writeReply(ip);
  }
}
