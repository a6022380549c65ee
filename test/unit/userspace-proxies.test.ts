// The proxies' dialer and resolver in userspace networking, on real parts below the data path: two netstacks back
// to back (the "tailnet"), a TCP server on loopback (the "host"), quad-100's table built from a netmap, and a DNS
// server on loopback standing for a split-DNS route's resolver. Tailnet addresses go into the stack, the rest to
// the host; MagicDNS names are answered from the table, unknown names of the tailnet domain fail, split-DNS names go
// to their resolver and the rest to the OS (localhost from the hosts file).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { TailNode } from '../../main/engine/control/tailcfg.ts';
import { inTailnetRanges } from '../../main/engine/datapath/netstack-port.ts';
import { buildDnsTable } from '../../main/engine/dns/table.ts';
import { NetStack } from '../../main/engine/netstack/index.ts';
import { parseAddress } from '../../main/engine/packet/ip.ts';
import { withIdleTimeout } from '../../main/engine/services/netstack-peerapi.ts';
import { UserspaceProxies } from '../../main/engine/services/userspace-proxies.ts';

const node = (o: Record<string, unknown>): TailNode => o as unknown as TailNode;
const self = node({ Name: 'me.tailnet.test.', Addresses: ['100.64.0.1/32'] });
const peer = node({ Name: 'laptop.tailnet.test.', Addresses: ['100.64.0.2/32'] });

function readAll(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
}

test('userspace proxies: tailnet into the stack, the rest from the host; names by MagicDNS, split DNS, the OS', async (t) => {
  let a: NetStack | undefined;
  let b: NetStack | undefined;
  a = new NetStack({ addresses: ['100.64.0.1'], output: (p) => setImmediate(() => b?.deliver(p)) });
  b = new NetStack({ addresses: ['100.64.0.2'], output: (p) => setImmediate(() => a?.deliver(p)) });
  b.listen(80, (s) => {
    s.on('error', () => {}); // the stacks' close aborts what is left
    s.end('from the tailnet');
  });
  const host = createServer((s) => s.end('from the host'));
  await new Promise<void>((r) => host.listen(0, '127.0.0.1', () => r()));
  const resolver = createSocket('udp4');
  resolver.on('message', (m, from) => {
    const q = dnsPacket.decode(m);
    const name = q.questions?.[0]?.name ?? '';
    const answers =
      q.questions?.[0]?.type === 'A' && name === 'db.corp.example'
        ? [{ type: 'A' as const, name, ttl: 30, data: '192.0.2.7' }]
        : [];
    resolver.send(
      dnsPacket.encode({ type: 'response', id: q.id, flags: 384, questions: q.questions, answers }),
      from.port,
      from.address,
    );
  });
  await new Promise<void>((r) => resolver.bind(0, '127.0.0.1', () => r()));
  t.after(() => {
    a?.close();
    b?.close();
    host.close();
    resolver.close();
  });
  const dnsPort = (resolver.address() as AddressInfo).port;
  const dns = {
    Proxied: true,
    Domains: ['tailnet.test'],
    Routes: { 'corp.example.': [{ Addr: `127.0.0.1:${dnsPort}` }] },
  };
  const table = buildDnsTable(self, [peer], dns);
  const proxies = new UserspaceProxies(
    {
      routesViaTailnet: (address) => inTailnetRanges(parseAddress(address)),
      userspaceStack: a,
      dnsTable: table,
    },
    () => {},
  );

  assert.equal(await readAll(await proxies.dial('100.64.0.2', 80)), 'from the tailnet');
  const hostPort = (host.address() as AddressInfo).port;
  assert.equal(await readAll(await proxies.dial('127.0.0.1', hostPort)), 'from the host');
  await assert.rejects(proxies.dial('100.64.0.2', 81), /ECONNREFUSED|refused/i);

  assert.deepEqual(await proxies.resolve('laptop.tailnet.test'), ['100.64.0.2']);
  assert.deepEqual(await proxies.resolve('LAPTOP.tailnet.test.'), ['100.64.0.2']);
  assert.deepEqual(await proxies.resolve('laptop'), ['100.64.0.2']);
  await assert.rejects(proxies.resolve('nobody.tailnet.test'), /not a name in the tailnet/);
  assert.deepEqual(await proxies.resolve('db.corp.example'), ['192.0.2.7']);
  assert.ok((await proxies.resolve('localhost')).some((x) => x === '127.0.0.1' || x === '::1'));
});

test('userspace proxies with an exit node: outside names go to its DNS-over-HTTPS through the tailnet', async (t) => {
  let a: NetStack | undefined;
  let b: NetStack | undefined;
  a = new NetStack({ addresses: ['100.64.0.1'], output: (p) => setImmediate(() => b?.deliver(p)) });
  b = new NetStack({ addresses: ['100.64.0.2'], output: (p) => setImmediate(() => a?.deliver(p)) });
  const asked: string[] = [];
  // The exit node's PeerAPI /dns-query, on its side of the tailnet only.
  const doh = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const q = dnsPacket.decode(Buffer.concat(chunks));
      const question = q.questions?.[0];
      asked.push(`${req.method} ${req.url} ${question?.type} ${question?.name}`);
      const answers =
        question?.type === 'A' && question.name === 'example.com'
          ? [{ type: 'A' as const, name: question.name, ttl: 30, data: '203.0.113.80' }]
          : [];
      res.setHeader('content-type', 'application/dns-message');
      res.end(dnsPacket.encode({ type: 'response', id: q.id, flags: 384, questions: q.questions, answers }));
    });
  });
  b.listen(8053, (s) => {
    s.on('error', () => {});
    doh.emit('connection', withIdleTimeout(s));
  });
  t.after(() => {
    a?.close();
    b?.close();
  });
  const table = buildDnsTable(self, [peer], { Proxied: true, Domains: ['tailnet.test'] });
  table.routes = [{ suffix: '', resolvers: ['http://100.64.0.2:8053/dns-query'] }]; // what choosing the exit node sets
  const proxies = new UserspaceProxies(
    { routesViaTailnet: (address) => inTailnetRanges(parseAddress(address)), userspaceStack: a, dnsTable: table },
    () => {},
  );
  assert.deepEqual(await proxies.resolve('example.com'), ['203.0.113.80']);
  assert.deepEqual(asked.sort(), ['POST /dns-query A example.com', 'POST /dns-query AAAA example.com']);
  await assert.rejects(proxies.resolve('nothing.example'), /has no address \(asked the exit node's DNS\)/);
  assert.deepEqual(await proxies.resolve('laptop'), ['100.64.0.2'], 'MagicDNS names are still answered locally');
  assert.equal(asked.length, 4, 'no DoH question for a MagicDNS name');
});
