// The proxies' dialer and resolver in userspace networking, on real parts below the data path: two netstacks back
// to back (the "tailnet"), a TCP server on loopback (the "host"), quad-100's table built from a netmap, and a DNS
// server on loopback standing for a split-DNS route's resolver. Tailnet addresses go into the stack, the rest to
// the host; MagicDNS names are answered from the table, unknown names of the tailnet domain fail, split-DNS names go
// to their resolver and the rest to the OS (localhost from the hosts file).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { type AddressInfo, createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { TailNode } from '../../main/engine/control/tailcfg.ts';
import { inTailnetRanges } from '../../main/engine/datapath/netstack-port.ts';
import { buildDnsTable } from '../../main/engine/dns/table.ts';
import { NetStack } from '../../main/engine/netstack/index.ts';
import { parseAddress } from '../../main/engine/packet/ip.ts';
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
