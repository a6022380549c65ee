// Quad-100's answer algorithm (docs/protocol/services.md §3.4.2): a DNS query in, a reply out — local names, PTR for tailnet
// addresses, NXDOMAIN inside authoritative suffixes — or "forward to these resolvers". Malformed queries get FORMERR
// when they have a header to answer, and are dropped when they do not. Encoding by dns-packet.
import dnsPacket, { type Answer, type DecodedPacket, type Question } from 'dns-packet';
import { formatAddress } from '../packet/ip.ts';
import { type DnsTable, inZone } from './table.ts';

export const QUAD100_V4 = '100.100.100.100';
export const QUAD100_V6 = 'fd7a:115c:a1e0::53';
const SELF_NAME = 'magicdns.localhost-tailscale-daemon';
/** Positive answers: tailscaled v1.80–v1.102 use 600 s. */
export const ANSWER_TTL_S = 600;
const MAX_RESPONSE = 4095;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export type DnsOutcome =
  | { kind: 'reply'; packet: Uint8Array }
  | { kind: 'forward'; resolvers: string[]; query: Uint8Array; id: number; maxSize: number }
  | { kind: 'drop'; why: string };

/** A header-only reply (no question echoed): for queries that cannot be parsed. */
export function headerReply(query: Uint8Array, rcode: number): Uint8Array {
  const out = new Uint8Array(12);
  out[0] = query[0] ?? 0;
  out[1] = query[1] ?? 0;
  out[2] = 0x80 | ((query[2] ?? 0) & 0x01); // QR, opcode 0, RD echoed
  out[3] = ((query[2] ?? 0) & 0x01 ? 0x80 : 0) | (rcode & 0x0f); // RA when RD
  return out;
}

/** `tcp`: no truncation (a TCP answer may be up to 64 KiB). */
export function answerQuery(query: Uint8Array, t: DnsTable, transport: 'udp' | 'tcp' = 'udp'): DnsOutcome {
  if (query.length < 12) return { kind: 'drop', why: 'shorter than a DNS header' };
  if (query[2] & 0x80) return { kind: 'drop', why: 'a response, not a query' };
  // One question, no answer or authority records, at most a few additional ones (EDNS): anything else is not a
  // query a stub sends, and refusing it before decoding keeps hostile counts from costing a parse.
  const count = (at: number) => (query[at] << 8) | query[at + 1];
  if (count(4) !== 1 || count(6) !== 0 || count(8) !== 0 || count(10) > 2) {
    return { kind: 'reply', packet: headerReply(query, RCODE.FORMERR) };
  }
  let q: DecodedPacket;
  try {
    q = dnsPacket.decode(Buffer.from(query.buffer, query.byteOffset, query.byteLength));
  } catch {
    return { kind: 'reply', packet: headerReply(query, RCODE.FORMERR) };
  }
  const opcode = (query[2] >> 3) & 0x0f;
  if (opcode !== 0) return { kind: 'reply', packet: headerReply(query, RCODE.NOTIMP) };
  const question = q.questions?.[0];
  if (q.questions?.length !== 1 || !question || !validName(question.name)) {
    return { kind: 'reply', packet: headerReply(query, RCODE.FORMERR) };
  }
  const maxSize = transport === 'tcp' ? 0xffff : Math.min(MAX_RESPONSE, ednsSize(q));
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const reply = (rcode: number, answers: Answer[] = []) => ({
    kind: 'reply' as const,
    packet: encodeReply(q, question, rcode, answers, maxSize),
  });
  const forward = (): DnsOutcome => {
    const route = t.routes.find((r) => inZone(name, r.suffix));
    if (!route || route.resolvers.length === 0) return reply(RCODE.SERVFAIL);
    return { kind: 'forward', resolvers: route.resolvers, query, id: q.id ?? 0, maxSize };
  };
  const authoritative = t.authoritative.some((z) => inZone(name, z));

  if (question.type === 'PTR') {
    const ip = reverseName(name);
    if (ip === undefined) return forward();
    const target = ip === QUAD100_V4 || ip === QUAD100_V6 ? SELF_NAME : t.reverse.get(ip);
    if (target)
      return reply(RCODE.NOERROR, [{ type: 'PTR', name: question.name, ttl: ANSWER_TTL_S, data: `${target}.` }]);
    return authoritative ? reply(RCODE.NXDOMAIN) : forward();
  }
  if (name.endsWith('.onion') || name === 'onion') return reply(RCODE.NXDOMAIN);
  const host = name === SELF_NAME ? { fqdn: SELF_NAME, v4: [QUAD100_V4], v6: [QUAD100_V6] } : t.hosts.get(name);
  if (!host) return authoritative ? reply(RCODE.NXDOMAIN) : forward();
  // dns-packet's type names leave out ANY (255), which it decodes as "ANY"
  const qtype: string = question.type;
  switch (qtype) {
    case 'A':
      return reply(
        RCODE.NOERROR,
        host.v4.slice(0, 1).map((data) => ({ type: 'A', name: question.name, ttl: ANSWER_TTL_S, data })),
      );
    case 'AAAA':
      return reply(
        RCODE.NOERROR,
        host.v6.slice(0, 1).map((data) => ({ type: 'AAAA', name: question.name, ttl: ANSWER_TTL_S, data })),
      );
    case 'ANY': {
      const [v4] = host.v4;
      const [v6] = host.v6;
      const first: Answer[] = v4
        ? [{ type: 'A', name: question.name, ttl: ANSWER_TTL_S, data: v4 }]
        : v6
          ? [{ type: 'AAAA', name: question.name, ttl: ANSWER_TTL_S, data: v6 }]
          : [];
      return reply(RCODE.NOERROR, first);
    }
    case 'NS':
    case 'SOA':
    case 'AXFR':
    case 'HINFO':
      return reply(RCODE.NOTIMP);
    default:
      return reply(RCODE.NOERROR); // a known name without records of this type: no data
  }
}

/** An upstream answer too large for the client: its question only, with TC set, so the client retries over TCP. */
export function truncatedReply(answer: Uint8Array, query: Uint8Array): Uint8Array {
  try {
    const a = dnsPacket.decode(Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength));
    return new Uint8Array(
      dnsPacket.encode({
        ...a,
        flags: (a.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
        answers: [],
        authorities: [],
        additionals: [],
      }),
    );
  } catch {
    return servfailFor(query);
  }
}

/** The reply for a forwarded query that got no usable answer. */
export function servfailFor(query: Uint8Array): Uint8Array {
  return headerReplyWithQuestion(query, RCODE.SERVFAIL);
}

function headerReplyWithQuestion(query: Uint8Array, rcode: number): Uint8Array {
  try {
    const q = dnsPacket.decode(Buffer.from(query.buffer, query.byteOffset, query.byteLength));
    const question = q.questions?.[0];
    if (question) return encodeReply(q, question, rcode, [], MAX_RESPONSE);
  } catch {}
  return headerReply(query, rcode);
}

function encodeReply(q: DecodedPacket, question: Question, rcode: number, answers: Answer[], maxSize: number) {
  const rd = q.flag_rd ? dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE : 0;
  const packet = {
    type: 'response' as const,
    id: q.id ?? 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | rcode,
    questions: [question],
    answers,
  };
  const out = dnsPacket.encode(packet);
  if (out.length <= maxSize) return new Uint8Array(out);
  return new Uint8Array(
    dnsPacket.encode({ ...packet, flags: packet.flags | dnsPacket.TRUNCATED_RESPONSE, answers: [] }),
  );
}

/** The client's EDNS UDP payload size, or 512 without an OPT record. */
function ednsSize(q: DecodedPacket): number {
  const opt = (q.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  return Math.max(512, opt?.udpPayloadSize ?? 512);
}

function validName(name: string): boolean {
  if (name.length > 253) return false;
  return name === '' || name.split('.').every((l) => l.length > 0 && l.length <= 63);
}

/** The address a reverse name stands for: a.b.c.d.in-addr.arpa, or 32 nibbles .ip6.arpa; undefined otherwise. */
export function reverseName(name: string): string | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(name);
  if (v4) {
    const octets = v4.slice(1, 5).reverse().map(Number);
    return octets.every((o) => o <= 255) ? octets.join('.') : undefined;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(name);
  if (!v6?.[1]) return undefined;
  const nibbles = v6[1].split('.').filter(Boolean).reverse();
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = Number.parseInt(`${nibbles[2 * i]}${nibbles[2 * i + 1]}`, 16);
  return formatAddress(bytes);
}
