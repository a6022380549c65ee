// DNS queries to quad-100 (UDP and TCP) and upstream answers relayed back: answerQuery, truncatedReply and
// servfailFor always produce an outcome and never throw. The first byte picks the entry.

import { answerQuery, servfailFor, truncatedReply } from '../../../main/engine/dns/resolver.ts';
import { buildDnsTable } from '../../../main/engine/dns/table.ts';
import { check } from '../contract.ts';

const table = buildDnsTable(
  { ID: 1, Name: 'self.tailnet.test.', Addresses: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'] } as never,
  [
    { ID: 2, Name: 'peer.tailnet.test.', Addresses: ['100.64.0.2/32'] },
    { ID: 3, Name: 'six.tailnet.test.', Addresses: ['fd7a:115c:a1e0::3/128'] },
  ] as never[],
  {
    Resolvers: [{ Addr: '192.0.2.53' }],
    Routes: { 'corp.example.': [{ Addr: '192.0.2.54' }] },
    Domains: ['tailnet.test'],
    Proxied: true,
    ExtraRecords: [{ Name: 'extra.tailnet.test', Type: 'A', Value: '100.64.0.9' }],
  } as never,
);

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const body = data.subarray(1);
  switch (data[0] % 4) {
    case 0:
    case 1: {
      const o = answerQuery(body, table, data[0] % 4 === 0 ? 'udp' : 'tcp');
      if (o.kind === 'reply') check(o.packet.length >= 12, 'a reply shorter than a DNS header');
      return;
    }
    case 2: {
      // An upstream answer (second half) to a query (first half).
      const mid = body.length >> 1;
      check(truncatedReply(body.subarray(mid), body.subarray(0, mid)).length >= 12, 'short truncated reply');
      return;
    }
    default:
      check(servfailFor(body).length >= 12, 'short SERVFAIL');
  }
}
