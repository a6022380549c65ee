// The zero-copy IP parser: well-formed packets, IPv6 extension headers, fragments, and hostile input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildIpPacket,
  type IpPacketOptions,
  icmpMessage,
  tcpSegment,
  udpDatagram,
} from '../../main/engine/packet/build.ts';
import { internetChecksum } from '../../main/engine/packet/checksum.ts';
import { formatPacketAddress, IPPROTO, PacketInfo, parsePacket, TCP_FLAGS } from '../../main/engine/packet/parse.ts';

const V4 = { src: '100.64.0.2', dst: '100.64.0.1' };
const V6 = { src: 'fd7a:115c:a1e0::2', dst: 'fd7a:115c:a1e0::1' };
const syn = tcpSegment(40000, 22, TCP_FLAGS.SYN);

function pkt(o: Partial<IpPacketOptions> & { proto: number }, t: Uint8Array): Uint8Array {
  return buildIpPacket({ ...V4, ...o }, t);
}

test('IPv4 TCP SYN: addresses as u32 words, ports, flags', () => {
  const p = parsePacket(pkt({ proto: IPPROTO.TCP }, syn));
  assert.equal(p.status, 'ok');
  assert.equal(p.version, 4);
  assert.equal(p.proto, IPPROTO.TCP);
  assert.equal(p.src[0], 0x64400002);
  assert.equal(p.dst[0], 0x64400001);
  assert.deepEqual([...p.src.subarray(1)], [0, 0, 0]);
  assert.equal(p.srcPort, 40000);
  assert.equal(p.dstPort, 22);
  assert.equal(p.tcpFlags, TCP_FLAGS.SYN);
  assert.equal(p.isTcpSyn, true);
  assert.equal(p.length, 40);
  assert.equal(p.transportOffset, 20);
  assert.equal(p.transportLength, 20);
  assert.equal(p.fragment, false);
  assert.equal(formatPacketAddress(p, 'src'), '100.64.0.2');
});

test('SYN+ACK is not a SYN; IPv4 options move the transport header; padding is ignored', () => {
  const buf = pkt({ proto: IPPROTO.TCP, options: Uint8Array.of(1, 1, 1, 0) }, tcpSegment(22, 40000, 0x12));
  const padded = new Uint8Array(buf.length + 7);
  padded.set(buf);
  const p = parsePacket(padded);
  assert.equal(p.status, 'ok');
  assert.equal(p.transportOffset, 24);
  assert.equal(p.length, buf.length);
  assert.equal(p.srcPort, 22);
  assert.equal(p.isTcpSyn, false);
  assert.equal(internetChecksum(buf.subarray(0, 24)), 0, 'IPv4 header checksum verifies');
});

test('IPv4 UDP, ICMP echo, TSMP, other protocols', () => {
  let p = parsePacket(pkt({ proto: IPPROTO.UDP }, udpDatagram(5353, 53, Uint8Array.of(1, 2, 3))));
  assert.deepEqual([p.status, p.proto, p.srcPort, p.dstPort], ['ok', 17, 5353, 53]);
  p = parsePacket(pkt({ proto: IPPROTO.ICMP }, icmpMessage(8, 0)));
  assert.deepEqual([p.status, p.icmpType, p.icmpCode, p.srcPort], ['ok', 8, 0, 0]);
  p = parsePacket(pkt({ proto: IPPROTO.TSMP }, Uint8Array.of(0x21, 1, 2)));
  assert.deepEqual([p.status, p.proto], ['ok', 99]);
  p = parsePacket(pkt({ proto: 47 }, new Uint8Array(4)));
  assert.deepEqual([p.status, p.proto, p.srcPort], ['ok', 47, 0]);
  // ICMPv6's number inside IPv4 is just "some protocol": no ICMP fields.
  p = parsePacket(pkt({ proto: IPPROTO.ICMPV6 }, icmpMessage(128, 0)));
  assert.deepEqual([p.status, p.icmpType], ['ok', -1]);
});

test('IPv6 TCP/UDP/ICMPv6 with u32 address words', () => {
  let p = parsePacket(buildIpPacket({ ...V6, proto: IPPROTO.TCP }, syn));
  assert.equal(p.status, 'ok');
  assert.equal(p.version, 6);
  assert.deepEqual([...p.src], [0xfd7a115c, 0xa1e00000, 0, 2]);
  assert.deepEqual([p.srcPort, p.dstPort, p.isTcpSyn], [40000, 22, true]);
  assert.equal(formatPacketAddress(p, 'dst'), 'fd7a:115c:a1e0::1');
  p = parsePacket(buildIpPacket({ ...V6, proto: IPPROTO.UDP }, udpDatagram(1, 2)));
  assert.deepEqual([p.proto, p.srcPort, p.dstPort, p.transportOffset], [17, 1, 2, 40]);
  p = parsePacket(buildIpPacket({ ...V6, proto: IPPROTO.ICMPV6 }, icmpMessage(129, 0)));
  assert.deepEqual([p.proto, p.icmpType, p.icmpCode], [58, 129, 0]);
});

test('IPv6 extension headers are walked: hop-by-hop, destination options, routing', () => {
  const ext = [{ type: 0 as const }, { type: 60 as const, body: new Uint8Array(14) }, { type: 43 as const }];
  const p = parsePacket(buildIpPacket({ ...V6, proto: IPPROTO.UDP, ext }, udpDatagram(7, 9)));
  assert.equal(p.status, 'ok');
  assert.equal(p.proto, IPPROTO.UDP);
  assert.equal(p.transportOffset, 40 + 8 + 16 + 8);
  assert.deepEqual([p.srcPort, p.dstPort], [7, 9]);
});

test('IPv6 fragments: first fragment keeps ports, later ones are flagged, tiny offsets are refused', () => {
  const first = buildIpPacket(
    { ...V6, proto: IPPROTO.TCP, ext: [{ type: 44, fragOffset: 0, more: true }] },
    tcpSegment(1, 443, TCP_FLAGS.SYN, new Uint8Array(64)),
  );
  let p = parsePacket(first);
  assert.deepEqual([p.status, p.fragment, p.moreFragments, p.dstPort, p.isTcpSyn], ['ok', false, true, 443, true]);
  const later = buildIpPacket(
    { ...V6, proto: IPPROTO.UDP, ext: [{ type: 44, fragOffset: 1232, more: false }] },
    new Uint8Array(100),
  );
  p = parsePacket(later);
  assert.deepEqual([p.status, p.fragment, p.proto, p.fragmentOffset, p.dstPort], ['ok', true, 17, 1232, 0]);
  const tiny = buildIpPacket({ ...V6, proto: IPPROTO.TCP, ext: [{ type: 44, fragOffset: 8, more: true }] }, syn);
  assert.deepEqual([parsePacket(tiny).status, parsePacket(tiny).error], ['malformed', 'tiny-fragment-offset']);
});

test('IPv4 fragments: non-first fragments have no ports; RFC 1858 tiny fragments are malformed', () => {
  let p = parsePacket(pkt({ proto: IPPROTO.UDP, fragOffset: 1480 }, new Uint8Array(40)));
  assert.deepEqual([p.status, p.fragment, p.proto, p.srcPort, p.fragmentOffset], ['ok', true, 17, 0, 1480]);
  p = parsePacket(pkt({ proto: IPPROTO.TCP, fragOffset: 8 }, new Uint8Array(40)));
  assert.deepEqual([p.status, p.error], ['malformed', 'tiny-fragment-offset']);
  p = parsePacket(pkt({ proto: 47, moreFragments: true }, new Uint8Array(4)));
  assert.deepEqual([p.status, p.error], ['malformed', 'tiny-first-fragment']);
  p = parsePacket(pkt({ proto: IPPROTO.TCP, moreFragments: true }, new Uint8Array(12)));
  assert.deepEqual([p.status, p.error], ['malformed', 'short-tcp']);
  p = parsePacket(pkt({ proto: IPPROTO.UDP, moreFragments: true }, udpDatagram(1, 53, new Uint8Array(100))));
  assert.deepEqual([p.status, p.moreFragments, p.dstPort], ['ok', true, 53]);
});

test('lying and truncated headers are malformed, never thrown', () => {
  const good = pkt({ proto: IPPROTO.TCP }, syn);
  const cases: Array<[string, Uint8Array]> = [];
  const edit = (name: string, f: (b: Uint8Array) => void, len = good.length) => {
    const b = good.slice(0, len);
    f(b);
    cases.push([name, b]);
  };
  edit('short', () => {}, 19);
  edit('truncated', () => {}, 30);
  edit('bad-ihl', (b) => {
    b[0] = 0x44;
  });
  edit('bad-length', (b) => {
    b[2] = 0;
    b[3] = 16;
  });
  edit('bad-length', (b) => {
    b[0] = 0x4f; // IHL 60 > total 40
  });
  edit('bad-tcp-offset', (b) => {
    b[32] = 0x40;
  });
  edit('bad-tcp-offset', (b) => {
    b[32] = 0xf0;
  });
  edit('reserved-protocol', (b) => {
    b[9] = 255;
  });
  edit('reserved-protocol', (b) => {
    b[9] = 0;
  });
  edit('bad-version', (b) => {
    b[0] = 0x55;
  });
  for (const [why, b] of cases) {
    const p = parsePacket(b);
    assert.equal(p.status, 'malformed', why);
    assert.equal(p.error, why);
  }
  const v6 = buildIpPacket({ ...V6, proto: IPPROTO.UDP }, udpDatagram(1, 2));
  assert.equal(parsePacket(v6.subarray(0, 39)).error, 'short');
  assert.equal(parsePacket(v6.subarray(0, 47)).error, 'truncated');
  const misplaced = buildIpPacket({ ...V6, proto: IPPROTO.UDP, ext: [{ type: 60 }, { type: 0 }] }, udpDatagram(1, 2));
  assert.equal(parsePacket(misplaced).error, 'misplaced-hop-by-hop');
  const many = buildIpPacket({ ...V6, proto: IPPROTO.UDP, ext: Array(9).fill({ type: 60 }) }, udpDatagram(1, 2));
  assert.equal(parsePacket(many).error, 'too-many-ext-headers');
  const longExt = buildIpPacket({ ...V6, proto: IPPROTO.UDP, ext: [{ type: 60 }] }, udpDatagram(1, 2));
  longExt[41] = 200; // claims 1608 bytes
  assert.equal(parsePacket(longExt).error, 'truncated-ext-header');
  const shortUdp = buildIpPacket({ ...V6, proto: IPPROTO.UDP }, new Uint8Array(7));
  assert.equal(parsePacket(shortUdp).error, 'short-udp');
});

test('empty input is a keepalive; a reused descriptor is fully reset', () => {
  const p = new PacketInfo();
  parsePacket(pkt({ proto: IPPROTO.UDP }, udpDatagram(1000, 2000)), p);
  assert.equal(p.dstPort, 2000);
  assert.equal(parsePacket(pkt({ proto: IPPROTO.ICMP }, icmpMessage(0, 0)), p), p);
  assert.deepEqual([p.proto, p.srcPort, p.dstPort, p.icmpType], [1, 0, 0, 0]);
  parsePacket(new Uint8Array(0), p);
  assert.deepEqual([p.status, p.version, p.proto, p.src[0]], ['empty', 0, 0, 0]);
});

function guarded(buf: Uint8Array): Uint8Array {
  return new Proxy(buf, {
    get(target, key) {
      if (typeof key === 'string' && /^\d+$/.test(key) && Number(key) >= target.length) {
        throw new RangeError(`read past the end: [${key}] of ${target.length}`);
      }
      const v = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

test('20,000 random and mutated packets never throw and keep offsets in bounds', () => {
  let seed = 0x1234567;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const seeds = [
    pkt({ proto: IPPROTO.TCP }, syn),
    buildIpPacket({ ...V6, proto: IPPROTO.UDP, ext: [{ type: 0 }, { type: 44, fragOffset: 0, more: true }] }, syn),
    buildIpPacket({ ...V6, proto: IPPROTO.ICMPV6 }, icmpMessage(128, 0)),
  ];
  const p = new PacketInfo();
  for (let i = 0; i < 20_000; i++) {
    let buf: Uint8Array;
    if (i % 2 === 0) {
      buf = new Uint8Array(rnd(130));
      for (let j = 0; j < buf.length; j++) buf[j] = rnd(256);
      if (buf.length && rnd(2)) buf[0] = (rnd(2) ? 0x40 : 0x60) | (buf[0] & 0x0f);
    } else {
      const base = seeds[rnd(seeds.length)];
      buf = base.slice(0, rnd(base.length + 1));
      for (let k = rnd(4); k >= 0 && buf.length; k--) buf[rnd(buf.length)] = rnd(256);
    }
    // Every 10th input goes through a proxy that throws on any read past the end of the buffer.
    parsePacket(i % 10 === 1 ? guarded(buf) : buf, p);
    if (p.status === 'ok') {
      assert.ok(p.length <= buf.length);
      assert.ok(p.transportOffset + p.transportLength === p.length);
      assert.ok(p.srcPort >= 0 && p.srcPort <= 0xffff && p.dstPort <= 0xffff);
    } else if (p.status === 'malformed') {
      assert.ok(p.error.length > 0);
    }
  }
});
