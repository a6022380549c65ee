// The offering side's pure parts: CIDR sets, the advertise prefs, what status reports as approved, the exit node's
// reach with its own LANs cut out (tailscaled's shrinkDefaultRoute), the iptables rules, the wg-quick commands, and
// DNS-over-HTTPS requests (parsed, and answered through a real UDP resolver on loopback).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import { routeOffer } from '../../main/engine/core/status.ts';
import { dohQueryOf, serveDoh } from '../../main/engine/dns/doh.ts';
import { fullTunnelCommands } from '../../main/engine/plainwg/full-tunnel.ts';
import type { Prefs } from '../../main/engine/protocol.ts';
import { forwardingChains } from '../../main/engine/routes/forwarding-linux.ts';
import { advertisedRoutes, offeredLocalNets, shrinkDefaultRoute } from '../../main/engine/routes/offer.ts';
import { canonicalCidr, formatCidr, parseCidr, RangeSet } from '../../main/engine/routes/prefix-set.ts';

const prefs = (p: Partial<Prefs> = {}): Prefs => ({ ...DEFAULT_PREFS, advertiseRoutes: [], ...p });

test('CIDRs: canonical text, and sets that add and remove prefixes', () => {
  assert.equal(canonicalCidr('10.1.2.3/8'), '10.0.0.0/8');
  assert.equal(canonicalCidr('2001:DB8:0:0::1/32'), '2001:db8::/32');
  assert.equal(canonicalCidr('fd7a:115c:a1e0::/48'), 'fd7a:115c:a1e0::/48');
  assert.equal(canonicalCidr('::/0'), '::/0');
  assert.equal(canonicalCidr('1.2.3.4/33'), undefined);
  assert.equal(canonicalCidr('nonsense'), undefined);
  const set = new RangeSet(4)
    .add(parseCidr('10.0.0.0/8') ?? assert.fail())
    .remove(parseCidr('10.128.0.0/9') ?? assert.fail());
  assert.deepEqual(set.prefixes().map(formatCidr), ['10.0.0.0/9']);
  const hole = new RangeSet(4)
    .add(parseCidr('192.0.2.0/24') ?? assert.fail())
    .remove(parseCidr('192.0.2.0/25') ?? assert.fail());
  hole.add(parseCidr('192.0.2.5/32') ?? assert.fail());
  assert.deepEqual(hole.prefixes().map(formatCidr), ['192.0.2.5/32', '192.0.2.128/25']);
});

test("advertised routes: tailscaled's RoutableIPs order, the subnets then both default routes", () => {
  assert.deepEqual(advertisedRoutes(prefs({ advertiseRoutes: ['10.0.0.0/8'], advertiseExitNode: true })), [
    '10.0.0.0/8',
    '0.0.0.0/0',
    '::/0',
  ]);
  assert.deepEqual(advertisedRoutes(prefs({ advertiseRoutes: ['10.0.0.0/8'] })), ['10.0.0.0/8']);
});

test('status: approved is what control put in our AllowedIPs beyond our addresses', () => {
  const p = prefs({ advertiseExitNode: true, advertiseRoutes: ['192.0.2.0/24'] });
  const self = { ID: 1, Addresses: ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'] };
  assert.deepEqual(routeOffer(p, { ...self, AllowedIPs: [...self.Addresses] }), {
    advertised: ['192.0.2.0/24', '0.0.0.0/0', '::/0'],
    approved: [],
  });
  assert.deepEqual(routeOffer(p, { ...self, AllowedIPs: [...self.Addresses, '192.0.2.0/24', '0.0.0.0/0', '::/0'] }), {
    advertised: ['192.0.2.0/24', '0.0.0.0/0', '::/0'],
    approved: ['192.0.2.0/24', '0.0.0.0/0', '::/0'],
  });
  assert.deepEqual(routeOffer(prefs(), undefined), { advertised: [], approved: [] });
});

test("an exit node's reach: its LANs cut out (its own address kept), private and tailnet ranges never", () => {
  const ifaces = [
    { cidr: '203.0.113.3/24', internal: false },
    { cidr: '127.0.0.1/8', internal: true },
    { cidr: '100.64.0.2/32', internal: false },
    { cidr: '2001:db8:1::5/64', internal: false },
  ];
  const v4 = shrinkDefaultRoute(parseCidr('0.0.0.0/0') ?? assert.fail(), ifaces).map(formatCidr);
  const has = (list: string[], ip: string) => {
    const a = parseCidr(ip) ?? assert.fail();
    return list.some((p) => {
      const c = parseCidr(p) ?? assert.fail();
      const shift = BigInt((a.version === 4 ? 32 : 128) - c.bits);
      return c.version === a.version && a.base >> shift === c.base >> shift;
    });
  };
  assert.ok(has(v4, '198.51.100.10'), 'the internet');
  assert.ok(has(v4, '0.0.0.0'), "tailscaled's DoH probe address");
  assert.ok(has(v4, '203.0.113.3'), 'our own LAN address');
  for (const out of ['203.0.113.1', '127.0.0.2', '10.1.1.1', '192.168.0.1', '100.64.0.9', '169.254.1.1', '224.0.0.1']) {
    assert.ok(!has(v4, out), `${out} must be cut out`);
  }
  const v6 = shrinkDefaultRoute(parseCidr('::/0') ?? assert.fail(), ifaces).map(formatCidr);
  assert.ok(has(v6, '2000::') && has(v6, '2001:db8:1::5'));
  for (const out of ['2001:db8:1::9', 'fe80::1', 'ff02::1', 'fd7a:115c:a1e0::1']) assert.ok(!has(v6, out), out);
  const nets = offeredLocalNets(['203.0.113.0/24', '0.0.0.0/0'], ifaces);
  assert.ok(has(nets, '203.0.113.1'), 'a LAN also advertised as a subnet stays reachable');
});

test('forwarding rules: the mark, accept and masquerade of tailscaled, in our own chains', () => {
  const [fwd, nat] = forwardingChains('trellis0', 4);
  assert.deepEqual(fwd, {
    tool: 'iptables',
    table: 'filter',
    parent: 'FORWARD',
    chain: 'trellis-forward',
    rules: [
      ['-i', 'trellis0', '-j', 'MARK', '--set-mark', '0x40000/0xff0000'],
      ['-m', 'mark', '--mark', '0x40000/0xff0000', '-j', 'ACCEPT'],
      ['-o', 'trellis0', '-s', '100.64.0.0/10', '-j', 'DROP'],
      ['-o', 'trellis0', '-j', 'ACCEPT'],
    ],
  });
  assert.deepEqual(nat?.rules, [['-m', 'mark', '--mark', '0x40000/0xff0000', '-j', 'MASQUERADE']]);
  const six = forwardingChains('trellis0', 6);
  assert.equal(six[0]?.tool, 'ip6tables');
  assert.ok(!JSON.stringify(six).includes('100.64.0.0/10'));
});

test('wg full tunnel: the wg-quick commands per family', () => {
  assert.deepEqual(fullTunnelCommands('wg0', 51820, [4]), [
    ['-4', 'route', 'add', '0.0.0.0/0', 'dev', 'wg0', 'table', '51820'],
    ['-4', 'rule', 'add', 'not', 'fwmark', '51820', 'table', '51820'],
    ['-4', 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0'],
  ]);
  assert.equal(fullTunnelCommands('wg0', 51821, [4, 6]).length, 6);
});

test('DoH requests: GET ?dns= base64url, POST application/dns-message, the rest refused as tailscaled does', () => {
  const q = new Uint8Array(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.example' }] }));
  const b64 = Buffer.from(q).toString('base64url');
  assert.deepEqual(dohQueryOf('GET', `/dns-query?dns=${b64}`, undefined), { query: q });
  assert.deepEqual(dohQueryOf('POST', '/dns-query', 'application/dns-message', q), { query: q });
  assert.match((dohQueryOf('GET', '/dns-query', undefined) as { error: string }).error, /missing 'dns' parameter/);
  assert.deepEqual(dohQueryOf('GET', '/dns-query?dns=a+b=', undefined), { error: "invalid 'dns' base64 encoding" });
  assert.deepEqual(dohQueryOf('POST', '/dns-query', 'text/plain', q), { error: 'unexpected Content-Type' });
  assert.deepEqual(dohQueryOf('PUT', '/dns-query', undefined), { error: 'bad HTTP method' });
  assert.deepEqual(dohQueryOf('POST', '/dns-query', 'application/dns-message', new Uint8Array(300 << 10)), {
    error: 'query too large',
  });
});

test('DoH answers through the upstream resolver; refused callers get 403', async (t) => {
  const upstream = createSocket('udp4');
  upstream.on('message', (msg, from) => {
    const q = dnsPacket.decode(msg);
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id,
      questions: q.questions,
      answers: [{ type: 'A', name: q.questions?.[0]?.name ?? '', ttl: 30, data: '192.0.2.77' }],
    });
    upstream.send(reply, from.port, from.address);
  });
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
  const resolver = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  let allowed = true;
  const server = createServer((req, res) => void serveDoh(req, res, allowed ? { resolvers: [resolver] } : undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.close();
    upstream.close();
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dns-query`;
  const q = Buffer.from(dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'A', name: 'nas.example' }] }));
  for (const r of [
    await fetch(`${base}?dns=${q.toString('base64url')}`),
    await fetch(base, { method: 'POST', headers: { 'content-type': 'application/dns-message' }, body: q }),
  ]) {
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/dns-message');
    const answer = dnsPacket.decode(Buffer.from(await r.arrayBuffer()));
    assert.equal(answer.id, 5);
    assert.deepEqual(
      answer.answers?.map((a) => (a.type === 'A' ? a.data : '')),
      ['192.0.2.77'],
    );
  }
  const junk = await fetch(`${base}?dns=AAAA`);
  assert.equal(junk.status, 500, 'a query without a question: "DNS forwarding error"');
  allowed = false;
  const denied = await fetch(`${base}?dns=${q.toString('base64url')}`);
  assert.equal(denied.status, 403);
  assert.match(await denied.text(), /DNS access denied/);
});
