// Quad-100 off the packet path's back (issue 13, item 4): answers known from the netmap are queued and written
// once per TUN batch, built from the query's bytes exactly as the generic builder would, and reused (with the
// asker's ID) until the netmap changes; forwarded answers are written at once.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { TailNode } from '../../main/engine/control/tailcfg.ts';
import { Quad100 } from '../../main/engine/dns/quad100.ts';
import { udpReplyPacket } from '../../main/engine/dns/reply-packet.ts';
import { buildDnsTable } from '../../main/engine/dns/table.ts';
import { buildIpPacket, udpDatagram } from '../../main/engine/packet/build.ts';
import { IPPROTO, PacketInfo, parsePacket } from '../../main/engine/packet/parse.ts';

const node = (name: string, addrs: string[]): TailNode => ({ ID: 1, Name: name, Addresses: addrs }) as TailNode;
const SELF = ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'];

function query(src: string, id: number, name: string, port = 40000): Uint8Array {
  const dst = src.includes(':') ? 'fd7a:115c:a1e0::53' : '100.100.100.100';
  const dns = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name }],
  });
  return buildIpPacket({ src, dst, proto: IPPROTO.UDP }, udpDatagram(port, 53, new Uint8Array(dns)));
}

function harness(laptop = '100.64.0.2/32') {
  const queued: Uint8Array[] = [];
  let flushes = 0;
  const q = new Quad100(
    (pkt) => queued.push(pkt),
    () => flushes++,
  );
  const table = (addr: string) =>
    buildDnsTable(node('me.tailnet.test.', SELF), [node('laptop.tailnet.test.', [addr])], { Proxied: true });
  q.table = table(laptop);
  q.setOwnAddresses(SELF);
  const info = new PacketInfo();
  const feed = (pkt: Uint8Array) => q.handle(pkt, parsePacket(pkt, info));
  return { q, queued, flushes: () => flushes, feed, table };
}

/** The data of a reply's first answer record ('' when it has none). */
const firstA = (pkt: Uint8Array): string =>
  String((dnsOf(pkt).answers?.[0] as { data?: unknown } | undefined)?.data ?? '');

const dnsOf = (pkt: Uint8Array) => {
  const p = parsePacket(pkt, new PacketInfo());
  assert.equal(p.status, 'ok');
  return dnsPacket.decode(Buffer.from(pkt.subarray(p.transportOffset + 8, p.transportOffset + p.transportLength)));
};

describe('quad-100 answers in batches', () => {
  test('the reply packet is byte for byte what the generic builder makes, IPv4 and IPv6', () => {
    const dns = new Uint8Array(dnsPacket.encode({ type: 'response', id: 9, questions: [{ type: 'A', name: 'x' }] }));
    for (const [client, server] of [
      ['100.64.0.1', '100.100.100.100'],
      ['fd7a:115c:a1e0::1', 'fd7a:115c:a1e0::53'],
    ]) {
      const asked = query(client, 9, 'x', 51234);
      const p = parsePacket(asked, new PacketInfo());
      const want = buildIpPacket({ src: server, dst: client, proto: IPPROTO.UDP }, udpDatagram(53, 51234, dns));
      assert.deepEqual(udpReplyPacket(asked, p.version, p.srcPort, dns), want, client);
    }
  });

  test('a batch of queries is queued and written with one flush at the batch end; none when there were none', () => {
    const { queued, flushes, feed, q } = harness();
    for (let id = 1; id <= 5; id++) feed(query('100.64.0.1', id, 'laptop.tailnet.test'));
    assert.equal(queued.length, 5);
    assert.equal(flushes(), 0, 'nothing written in the middle of the batch');
    q.flushReplies();
    assert.equal(flushes(), 1);
    q.flushReplies();
    assert.equal(flushes(), 1, 'an empty batch writes nothing');
  });

  test('a reused answer carries each asker’s ID and port; a new netmap is answered from the new table', () => {
    const { queued, feed, q, table } = harness();
    feed(query('100.64.0.1', 100, 'laptop.tailnet.test', 40001));
    feed(query('fd7a:115c:a1e0::1', 200, 'laptop.tailnet.test', 40002));
    feed(query('100.64.0.1', 300, 'LAPTOP.tailnet.test', 40003)); // other bytes: answered afresh
    const got = queued.map(dnsOf);
    assert.deepEqual(
      got.map((d) => d.id),
      [100, 200, 300],
    );
    assert.deepEqual(
      queued.map((pkt) => parsePacket(pkt, new PacketInfo()).dstPort),
      [40001, 40002, 40003],
    );
    for (const pkt of queued) assert.equal(firstA(pkt), '100.64.0.2');
    q.table = table('100.64.0.9/32');
    feed(query('100.64.0.1', 400, 'laptop.tailnet.test'));
    assert.equal(firstA(queued[3]), '100.64.0.9', 'no stale answer');
  });

  test('hostile queries (short, a response, garbage) never throw and are never reused for a real one', () => {
    const { queued, feed } = harness();
    const raw = (payload: Uint8Array) =>
      buildIpPacket({ src: '100.64.0.1', dst: '100.100.100.100', proto: IPPROTO.UDP }, udpDatagram(1, 53, payload));
    feed(raw(new Uint8Array(3)));
    feed(raw(new Uint8Array(12).fill(0xff)));
    for (let i = 0; i < 2000; i++)
      feed(raw(Uint8Array.from({ length: 12 + (i % 40) }, (_, j) => (i * 31 + j * 7) & 0xff)));
    const before = queued.length;
    feed(query('100.64.0.1', 1, 'laptop.tailnet.test'));
    assert.equal(queued.length, before + 1);
    assert.equal(firstA(queued[before]), '100.64.0.2');
  });

  test('a forwarded query is answered (SERVFAIL here) with a flush of its own, not held for a batch end', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
    const { q, queued, flushes, feed } = harness();
    q.table = buildDnsTable(node('me.tailnet.test.', SELF), [], {
      Resolvers: [{ Addr: `127.0.0.1:${silent.address().port}` }],
    });
    // REFUSED (header only): the forwarder gives up on it at once and quad-100 answers SERVFAIL
    silent.on('message', (m, from) =>
      silent.send(Buffer.from([m[0], m[1], 0x81, 0x05, 0, 0, 0, 0, 0, 0, 0, 0]), from.port, from.address),
    );
    try {
      feed(query('100.64.0.1', 77, 'example.com'));
      for (let i = 0; i < 100 && queued.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(queued.length, 1);
      assert.equal(flushes(), 1);
      assert.equal((dnsOf(queued[0]).flags ?? 0) & 0x0f, 2, 'SERVFAIL');
      assert.equal(dnsOf(queued[0]).id, 77);
    } finally {
      silent.close();
    }
  });
});
