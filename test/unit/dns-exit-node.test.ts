// quad-100 while an exit node is in use (docs/protocol/services.md §3.3 step 8): other names go to the exit node's DoH on its
// PeerAPI when it offers one, unless control marked resolvers UseWithExitNode; and the forwarder's DoH client,
// against an HTTP server on loopback.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { TailNode } from '../../main/engine/control/tailcfg.ts';
import { DnsForwarder } from '../../main/engine/dns/forwarder.ts';
import { buildDnsTable } from '../../main/engine/dns/table.ts';

const node = (o: Record<string, unknown>): TailNode => o as unknown as TailNode;
const self = node({ Name: 'me.tailnet.test.', Addresses: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'] });
const DOH_SERVICES = [
  { Proto: 'peerapi4', Port: 45061 },
  { Proto: 'peerapi6', Port: 45062 },
  { Proto: 'peerapi-dns-proxy', Port: 1 },
];
const exit = node({
  Name: 'exit.tailnet.test.',
  StableID: 'nExit',
  Addresses: ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'],
  Hostinfo: { Services: DOH_SERVICES },
});
const oldExit = node({
  Name: 'old.tailnet.test.',
  StableID: 'nOld',
  Addresses: ['100.64.0.3/32'],
  Hostinfo: { Services: [{ Proto: 'peerapi4', Port: 1234 }] },
});
const dns = {
  Proxied: true,
  Resolvers: [{ Addr: '192.0.2.53' }],
  Routes: {
    'corp.example.': [{ Addr: '192.0.2.54' }],
    'keep.example.': [{ Addr: '192.0.2.55', UseWithExitNode: true }],
  },
};
const defaults = (t: ReturnType<typeof buildDnsTable>) => t.routes.find((r) => r.suffix === '')?.resolvers;
const suffixes = (t: ReturnType<typeof buildDnsTable>) => t.routes.map((r) => r.suffix).sort();

describe('DNS table with an exit node', () => {
  test('an exit node offering DoH answers the other names; routes without UseWithExitNode go', () => {
    const t = buildDnsTable(self, [exit, oldExit], dns, ['203.0.113.1'], 'nExit');
    assert.deepEqual(defaults(t), ['http://100.64.0.2:45061/dns-query']);
    assert.deepEqual(suffixes(t), ['', 'keep.example']);
    const v6self = node({ Name: 'me.tailnet.test.', Addresses: ['fd7a:115c:a1e0::1/128'] });
    const t6 = buildDnsTable(v6self, [exit], undefined, [], 'nExit');
    assert.deepEqual(defaults(t6), ['http://[fd7a:115c:a1e0::2]:45062/dns-query'], 'an IPv6-only self uses peerapi6');
  });

  test('resolvers marked UseWithExitNode stay the defaults', () => {
    const marked = { ...dns, Resolvers: [{ Addr: '192.0.2.53' }, { Addr: '192.0.2.99', UseWithExitNode: true }] };
    assert.deepEqual(defaults(buildDnsTable(self, [exit], marked, [], 'nExit')), ['192.0.2.99']);
  });

  test('no exit node, one without DoH, or one not in the netmap: the usual defaults and routes', () => {
    for (const id of ['', 'nOld', 'nGone']) {
      const t = buildDnsTable(self, [exit, oldExit], dns, ['203.0.113.1'], id);
      assert.deepEqual(defaults(t), ['192.0.2.53'], id);
      assert.deepEqual(suffixes(t), ['', 'corp.example', 'keep.example'], id);
    }
    assert.deepEqual(defaults(buildDnsTable(self, [exit], undefined, ['203.0.113.1'], '')), ['203.0.113.1']);
  });

  test('hostile Hostinfo: bad ports or no services give no DoH URL', () => {
    for (const Services of [
      [
        { Proto: 'peerapi-dns-proxy', Port: 1 },
        { Proto: 'peerapi4', Port: 70000 },
      ],
      'x',
      null,
    ]) {
      const bad = node({ ...exit, Hostinfo: { Services } });
      assert.deepEqual(
        defaults(buildDnsTable(self, [bad], dns, [], 'nExit')),
        ['192.0.2.53'],
        JSON.stringify(Services),
      );
    }
  });
});

describe('forwarder: DoH', () => {
  async function dohServer(answer: (q: dnsPacket.DecodedPacket) => { status: number; body: Buffer }): Promise<{
    url: string;
    server: Server;
    seen: string[];
  }> {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        const a = answer(dnsPacket.decode(Buffer.concat(chunks)));
        res.writeHead(a.status, { 'content-type': 'application/dns-message' }).end(a.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/dns-query`, server, seen };
  }
  const query = (id: number) =>
    new Uint8Array(dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name: 'outside.example' }] }));

  test('the query is POSTed; the answer relayed as it is', async () => {
    const s = await dohServer((q) => ({
      status: 200,
      body: dnsPacket.encode({
        type: 'response',
        id: q.id,
        questions: q.questions,
        answers: [{ type: 'A', name: 'outside.example', ttl: 9, data: '198.51.100.80' }],
      }),
    }));
    try {
      const r = await new DnsForwarder().forward(query(77), [s.url], 3_000);
      assert.ok(r, 'no answer');
      const d = dnsPacket.decode(Buffer.from(r));
      assert.equal(d.id, 77);
      assert.deepEqual(
        (d.answers ?? []).map((a) => (a as { data?: unknown }).data),
        ['198.51.100.80'],
      );
      assert.deepEqual(s.seen, ['POST /dns-query application/dns-message']);
    } finally {
      s.server.close();
    }
  });

  test('an HTTP error, a wrong ID or an oversized body is no answer', async () => {
    for (const bad of [
      () => ({ status: 403, body: Buffer.from('DNS access denied') }),
      (q: dnsPacket.DecodedPacket) => ({
        status: 200,
        body: dnsPacket.encode({ type: 'response', id: (q.id ?? 0) + 1 }),
      }),
      () => ({ status: 200, body: Buffer.alloc(70_000, 1) }),
    ]) {
      const s = await dohServer(bad);
      try {
        assert.equal(await new DnsForwarder().forward(query(5), [s.url], 3_000), undefined);
      } finally {
        s.server.close();
      }
    }
  });
});
