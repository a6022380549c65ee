// Quad-100: the name table from a netmap, the answer algorithm (docs/protocol/services.md §3.4.2), malformed queries, and the
// forwarder against DNS servers on loopback.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { describe, test } from 'node:test';
import dnsPacket, { type Answer, type DecodedPacket } from 'dns-packet';
import type { TailNode } from '../../main/engine/control/tailcfg.ts';
import { DnsForwarder, parseResolver } from '../../main/engine/dns/forwarder.ts';
import { answerQuery, type DnsOutcome, RCODE, reverseName } from '../../main/engine/dns/resolver.ts';
import { buildDnsTable } from '../../main/engine/dns/table.ts';

const node = (name: string, addrs: string[]): TailNode => ({ Name: name, Addresses: addrs }) as unknown as TailNode;
const self = node('me.tailnet.test.', ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128']);
const peers = [
  node('Laptop.tailnet.test.', ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128']),
  node('v6only.tailnet.test.', ['fd7a:115c:a1e0::3/128']),
];
const dns = {
  Proxied: true,
  Domains: ['tailnet.test'],
  Resolvers: [{ Addr: '192.0.2.53' }],
  Routes: { 'corp.example.': [{ Addr: '192.0.2.54:5353' }], 'local.example': [] },
  ExtraRecords: [{ Name: 'grafana.tailnet.test', Type: 'A', Value: '100.64.0.9' }],
};
const table = buildDnsTable(self, peers, dns);

let nextId = 1;
function query(name: string, type: string, extra: Partial<dnsPacket.Packet> = {}): Uint8Array {
  const q = { type: 'query' as const, id: nextId++, flags: dnsPacket.RECURSION_DESIRED, ...extra };
  return new Uint8Array(dnsPacket.encode({ ...q, questions: [{ type, name } as dnsPacket.Question] }));
}
function reply(o: DnsOutcome): DecodedPacket & { rcode?: string } {
  assert.equal(o.kind, 'reply', `expected a reply, got ${JSON.stringify(o).slice(0, 200)}`);
  return dnsPacket.decode(Buffer.from((o as { packet: Uint8Array }).packet)) as DecodedPacket & { rcode?: string };
}
const data = (p: DecodedPacket): string[] =>
  (p.answers ?? []).map((a: Answer) => `${a.type} ${String((a as { data?: unknown }).data)}`);

describe('quad-100 answers', () => {
  test('A for FQDN (any case) and short name; one record, TTL 600, authoritative, RA when RD', () => {
    for (const name of ['laptop.tailnet.test', 'LAPTOP.tailnet.test.', 'laptop']) {
      const r = reply(answerQuery(query(name, 'A'), table));
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(data(r), ['A 100.64.0.2']);
      assert.equal((r.answers?.[0] as { ttl?: number } | undefined)?.ttl, 600);
      assert.ok(r.flag_aa && r.flag_qr && r.flag_rd && r.flag_ra);
      assert.equal(r.questions?.[0]?.name.toLowerCase(), name.toLowerCase().replace(/\.$/, ''));
    }
  });

  test('AAAA: no data for a dual-stack node (as tailscaled), the address for an IPv6-only one', () => {
    const dual = reply(answerQuery(query('laptop.tailnet.test', 'AAAA'), table));
    assert.equal(dual.rcode, 'NOERROR');
    assert.deepEqual(data(dual), []);
    assert.deepEqual(data(reply(answerQuery(query('v6only', 'AAAA'), table))), ['AAAA fd7a:115c:a1e0::3']);
  });

  test('PTR for tailnet addresses and quad-100 itself; NXDOMAIN for unknown ones in the tailnet zones', () => {
    assert.deepEqual(data(reply(answerQuery(query('2.0.64.100.in-addr.arpa', 'PTR'), table))), [
      'PTR laptop.tailnet.test',
    ]);
    const v6 = `${'2.0.0.0.'.repeat(1)}${'0.0.0.0.'.repeat(4)}${'0.e.1.a.c.5.1.1.a.7.d.f.'}ip6.arpa`;
    assert.equal(reverseName(v6), 'fd7a:115c:a1e0::2');
    assert.deepEqual(data(reply(answerQuery(query(v6, 'PTR'), table))), ['PTR laptop.tailnet.test']);
    assert.deepEqual(data(reply(answerQuery(query('100.100.100.100.in-addr.arpa', 'PTR'), table))), [
      'PTR magicdns.localhost-tailscale-daemon',
    ]);
    assert.equal(reply(answerQuery(query('77.0.64.100.in-addr.arpa', 'PTR'), table)).rcode, 'NXDOMAIN');
  });

  test('unknown names: NXDOMAIN inside the tailnet and authoritative routes, forwarded by route elsewhere', () => {
    assert.equal(reply(answerQuery(query('nobody.tailnet.test', 'A'), table)).rcode, 'NXDOMAIN');
    assert.equal(reply(answerQuery(query('x.local.example', 'A'), table)).rcode, 'NXDOMAIN');
    assert.equal(reply(answerQuery(query('hidden.onion', 'A'), table)).rcode, 'NXDOMAIN');
    const out = answerQuery(query('www.example.com', 'A'), table);
    assert.equal(out.kind, 'forward');
    assert.deepEqual(out.kind === 'forward' && out.resolvers, ['192.0.2.53']);
    const corp = answerQuery(query('git.corp.example', 'A'), table);
    assert.deepEqual(corp.kind === 'forward' && corp.resolvers, ['192.0.2.54:5353'], 'the most specific route');
    const none = buildDnsTable(self, peers, { Proxied: true });
    assert.equal(reply(answerQuery(query('www.example.com', 'A'), none)).rcode, 'SERVFAIL', 'no resolver: SERVFAIL');
  });

  test('ExtraRecords, quad-100 by name, NOTIMP for NS/SOA, no data for other types of a known name', () => {
    assert.deepEqual(data(reply(answerQuery(query('grafana.tailnet.test', 'A'), table))), ['A 100.64.0.9']);
    assert.deepEqual(data(reply(answerQuery(query('magicdns.localhost-tailscale-daemon', 'A'), table))), [
      'A 100.100.100.100',
    ]);
    assert.equal(reply(answerQuery(query('laptop.tailnet.test', 'NS'), table)).rcode, 'NOTIMP');
    const txt = reply(answerQuery(query('laptop.tailnet.test', 'TXT'), table));
    assert.equal(txt.rcode, 'NOERROR');
    assert.deepEqual(data(txt), []);
  });

  test('short names only with MagicDNS on (Proxied)', () => {
    const off = buildDnsTable(self, peers, { ...dns, Proxied: false, Resolvers: [] });
    assert.notEqual(reply(answerQuery(query('laptop', 'A'), off)).rcode, 'NOERROR');
    assert.deepEqual(data(reply(answerQuery(query('laptop.tailnet.test', 'A'), off))), ['A 100.64.0.2']);
  });
});

describe('quad-100 and malformed queries', () => {
  test('no header: dropped; a response: dropped; garbage after the header or two questions: FORMERR', () => {
    assert.equal(answerQuery(new Uint8Array(11), table).kind, 'drop');
    assert.equal(answerQuery(query('laptop', 'A', { type: 'response' }), table).kind, 'drop');
    const junk = new Uint8Array([0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    const r = reply(answerQuery(junk, table));
    assert.equal(r.id, 0xbeef);
    assert.equal(r.rcode, 'FORMERR');
    const two = new Uint8Array(
      dnsPacket.encode({
        type: 'query',
        id: 7,
        questions: [
          { type: 'A', name: 'a' },
          { type: 'A', name: 'b' },
        ],
      }),
    );
    assert.equal(reply(answerQuery(two, table)).rcode, 'FORMERR');
  });

  test('a 64-byte label and a 300-byte name are FORMERR; 20,000 random queries never throw', () => {
    assert.equal(reply(answerQuery(query(`${'x'.repeat(64)}.tailnet.test`, 'A'), table)).rcode, 'FORMERR');
    const long = Array.from({ length: 10 }, () => 'y'.repeat(30)).join('.');
    assert.equal(reply(answerQuery(query(long, 'A'), table)).rcode, 'FORMERR');
    const kinds = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const b = randomBytes(12 + (i % 80));
      if (i % 3 === 0) b[2] &= 0x7f; // more of them look like queries
      if (i % 2 === 0) b.set([0, 1, 0, 0, 0, 0, 0, i % 3], 4); // and some get past the header counts
      const o = answerQuery(b, table);
      kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1);
    }
    assert.ok((kinds.get('reply') ?? 0) > 0 && (kinds.get('drop') ?? 0) > 0, JSON.stringify([...kinds]));
  });
});

describe('forwarder', () => {
  /** A DNS server on loopback answering every A query with `ip`, or with `rcode`. */
  async function server(answer: { ip?: string; rcode?: number }): Promise<{ port: number; close(): void }> {
    const s = createSocket('udp4');
    s.on('message', (msg, rinfo) => {
      const q = dnsPacket.decode(msg);
      const r = dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: answer.rcode ?? 0,
        questions: q.questions,
        answers: answer.ip ? [{ type: 'A', name: q.questions?.[0]?.name ?? '', ttl: 42, data: answer.ip }] : [],
      });
      s.send(r, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    return { port: s.address().port, close: () => s.close() };
  }

  test('the first usable answer is relayed byte for byte; REFUSED from one resolver lets another answer', async () => {
    const good = await server({ ip: '192.0.2.7' });
    const refusing = await server({ rcode: RCODE.REFUSED });
    try {
      const f = new DnsForwarder();
      const q = query('www.example.com', 'A');
      const r = await f.forward(q, [`127.0.0.1:${refusing.port}`, `127.0.0.1:${good.port}`], 3_000);
      assert.ok(r);
      const d = dnsPacket.decode(Buffer.from(r));
      assert.equal(d.id, (q[0] << 8) | q[1]);
      assert.deepEqual(data(d), ['A 192.0.2.7']);
      assert.equal((d.answers?.[0] as { ttl?: number } | undefined)?.ttl, 42, 'upstream TTL kept');
    } finally {
      good.close();
      refusing.close();
    }
  });

  test('all refusing, or silence past the cap: undefined (the caller answers SERVFAIL)', async () => {
    const refusing = await server({ rcode: RCODE.REFUSED });
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
    try {
      const f = new DnsForwarder();
      assert.equal(await f.forward(query('a.example', 'A'), [`127.0.0.1:${refusing.port}`], 3_000), undefined);
      const t0 = Date.now();
      assert.equal(await f.forward(query('b.example', 'A'), [`127.0.0.1:${silent.address().port}`], 300), undefined);
      assert.ok(Date.now() - t0 < 2_000);
    } finally {
      refusing.close();
      silent.close();
    }
  });

  test('resolver addresses: ip, ip:port, [v6]:port; anything else refused', () => {
    assert.deepEqual(parseResolver('192.0.2.1'), { host: '192.0.2.1', port: 53 });
    assert.deepEqual(parseResolver('192.0.2.1:5353'), { host: '192.0.2.1', port: 5353 });
    assert.deepEqual(parseResolver('[2001:db8::1]:53'), { host: '2001:db8::1', port: 53 });
    assert.deepEqual(parseResolver('2001:db8::1'), { host: '2001:db8::1', port: 53 });
    for (const bad of ['https://dns.example/dns-query', 'dns.example', '192.0.2.1:0', '192.0.2.1:99999']) {
      assert.equal(parseResolver(bad), undefined, bad);
    }
  });
});
