// Quad-100 answers only this node's own addresses (issue 12, finding 5): with IP forwarding on, a LAN host routing
// through us also reaches 100.100.100.100 through the TUN, and must not get an open resolver.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { TailNode } from '../../main/engine/control/tailcfg.ts';
import { Quad100 } from '../../main/engine/dns/quad100.ts';
import { buildDnsTable } from '../../main/engine/dns/table.ts';
import { buildIpPacket, tcpSegment, udpDatagram } from '../../main/engine/packet/build.ts';
import { formatPacketAddress, IPPROTO, PacketInfo, parsePacket, TCP_FLAGS } from '../../main/engine/packet/parse.ts';

const node = (name: string, addrs: string[]): TailNode => ({ ID: 1, Name: name, Addresses: addrs }) as TailNode;
const SELF = ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'];

function harness() {
  const replies: Uint8Array[] = [];
  const q = new Quad100((pkt) => replies.push(pkt));
  q.table = buildDnsTable(node('me.tailnet.test.', SELF), [node('laptop.tailnet.test.', ['100.64.0.2/32'])], {
    Proxied: true,
    Domains: ['tailnet.test'],
  });
  q.setOwnAddresses(SELF);
  const info = new PacketInfo();
  const feed = (pkt: Uint8Array) => {
    const p = parsePacket(pkt, info);
    assert.equal(p.status, 'ok');
    assert.ok(Quad100.isFor(p), 'a packet for quad-100');
    q.handle(pkt, p);
  };
  return { q, replies, feed };
}

function udpQuery(src: string, name = 'laptop.tailnet.test'): Uint8Array {
  const dst = src.includes(':') ? 'fd7a:115c:a1e0::53' : '100.100.100.100';
  const dns = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name }] });
  return buildIpPacket({ src, dst, proto: IPPROTO.UDP }, udpDatagram(40000, 53, new Uint8Array(dns)));
}

/** The destination of a reply and the A records in it. */
function answered(pkt: Uint8Array): { to: string; a: string[] } {
  const p = parsePacket(pkt, new PacketInfo());
  const dns = dnsPacket.decode(Buffer.from(pkt.subarray(p.transportOffset + 8, p.transportOffset + p.transportLength)));
  const a = (dns.answers ?? []).map((x) => String((x as { data?: unknown }).data));
  return { to: formatPacketAddress(p, 'dst'), a };
}

describe('quad-100 source check', () => {
  test('a query from our own IPv4 or IPv6 address is answered', () => {
    const { q, replies, feed } = harness();
    feed(udpQuery('100.64.0.1'));
    feed(udpQuery('fd7a:115c:a1e0::1'));
    assert.equal(replies.length, 2);
    assert.deepEqual(answered(replies[0]), { to: '100.64.0.1', a: ['100.64.0.2'] });
    assert.equal(answered(replies[1]).to, 'fd7a:115c:a1e0::1');
    assert.equal(q.counters.foreign, 0);
    assert.equal(q.counters.queries, 2);
  });

  test('queries from LAN hosts and other tailnet addresses are dropped unanswered and counted', () => {
    const { q, replies, feed } = harness();
    for (const src of ['192.168.1.50', '10.0.0.7', '100.64.0.2', '100.64.0.10', 'fd7a:115c:a1e0::2', '2001:db8::1']) {
      feed(udpQuery(src));
    }
    assert.equal(replies.length, 0, 'no answer to anyone else');
    assert.equal(q.counters.foreign, 6);
    assert.equal(q.counters.queries, 0, 'not even looked at');
  });

  test('TCP to quad-100 from another source gets no SYN-ACK; from ours it does', () => {
    const { q, replies, feed } = harness();
    const syn = (src: string) =>
      buildIpPacket(
        { src, dst: '100.100.100.100', proto: IPPROTO.TCP },
        tcpSegment(40001, 53, TCP_FLAGS.SYN, new Uint8Array(0), 1000, 0),
      );
    feed(syn('192.168.1.50'));
    assert.equal(replies.length, 0);
    assert.equal(q.counters.foreign, 1);
    feed(syn('100.64.0.1'));
    assert.equal(replies.length, 1);
    const p = parsePacket(replies[0], new PacketInfo());
    assert.equal(p.tcpFlags & (TCP_FLAGS.SYN | TCP_FLAGS.ACK), TCP_FLAGS.SYN | TCP_FLAGS.ACK);
  });

  test('our addresses follow the netmap: a new address is answered, the old one no longer', () => {
    const { q, replies, feed } = harness();
    q.setOwnAddresses(['100.64.0.5/32', 'not an address', '']);
    feed(udpQuery('100.64.0.1'));
    assert.equal(replies.length, 0);
    feed(udpQuery('100.64.0.5'));
    assert.equal(replies.length, 1);
    assert.equal(answered(replies[0]).to, '100.64.0.5');
    q.setOwnAddresses([]);
    feed(udpQuery('100.64.0.5'));
    assert.equal(replies.length, 1, 'before the first netmap nobody is answered');
    assert.equal(q.counters.foreign, 2);
  });
});
