// The netmap packet filter: rule compilation (docs/protocol/services.md §5.1/5.2) and inbound/outbound verdicts (§5.3/5.4).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FilterRule } from '../../main/engine/control/tailcfg.ts';
import { compileFilter, parseIPSet } from '../../main/engine/filter/compile.ts';
import { FlowTable } from '../../main/engine/filter/conntrack.ts';
import type { CompiledFilter, FilterEnv } from '../../main/engine/filter/filter.ts';
import { AddrSet } from '../../main/engine/filter/prefix.ts';
import { buildIpPacket, icmpMessage, tcpSegment, udpDatagram } from '../../main/engine/packet/build.ts';
import { IPPROTO, PacketInfo, parsePacket, TCP_FLAGS } from '../../main/engine/packet/parse.ts';

const ME4 = '100.64.0.1';
const ME6 = 'fd7a:115c:a1e0::1';
const SYN = TCP_FLAGS.SYN;
const ACK = TCP_FLAGS.ACK;

const port = (IP: string, First: number, Last = First) => ({ IP, Ports: { First, Last } });

const RULES: FilterRule[] = [
  { SrcIPs: ['100.64.0.2'], DstPorts: [port(ME4, 22)] },
  { SrcIPs: ['100.64.1.0/24'], DstPorts: [port('*', 80, 90)] },
  { SrcIPs: ['*'], DstPorts: [port('192.168.10.0/24', 443)], IPProto: [6] },
  { SrcIPs: ['fd7a:115c:a1e0::2'], DstPorts: [port(ME6, 8080)] },
  { SrcIPs: ['100.64.0.5'], DstPorts: [port(ME4, 0, 65535)], IPProto: [47, 132] },
  { SrcIPs: ['100.64.0.6'], DstPorts: [port(ME4, 0, 100)], IPProto: [47] },
  { SrcIPs: ['100.64.0.7'], DstPorts: [port(ME4, 53)], IPProto: [17] },
  { SrcIPs: ['100.64.2.1-100.64.2.6'], DstPorts: [port(ME4, 8000)] },
];

function env(extra: Partial<FilterEnv> = {}): FilterEnv {
  return { local: new AddrSet([`${ME4}/32`, `${ME6}/128`, '192.168.10.0/24']), conntrack: new FlowTable(), ...extra };
}

const P = new PacketInfo();
function tcp(src: string, dst: string, dport: number, flags: number = SYN, sport = 40000): PacketInfo {
  return parsePacket(buildIpPacket({ src, dst, proto: IPPROTO.TCP }, tcpSegment(sport, dport, flags)), P);
}
function udp(src: string, dst: string, sport: number, dport: number): PacketInfo {
  return parsePacket(buildIpPacket({ src, dst, proto: IPPROTO.UDP }, udpDatagram(sport, dport)), P);
}
function icmp(src: string, dst: string, type: number, code = 0): PacketInfo {
  const proto = src.includes(':') ? IPPROTO.ICMPV6 : IPPROTO.ICMP;
  return parsePacket(buildIpPacket({ src, dst, proto }, icmpMessage(type, code)), P);
}
function raw(src: string, dst: string, proto: number, len = 8): PacketInfo {
  return parsePacket(buildIpPacket({ src, dst, proto }, new Uint8Array(len)), P);
}

const f = compileFilter(RULES);
const e = env();
const inb = (flt: CompiledFilter, p: PacketInfo, en: FilterEnv = e) => flt.checkInbound(p, en);

test('compiles the rules cleanly, split by family', () => {
  assert.deepEqual(f.stats, { rules: 8, skipped: 0, firstError: '', rejected: '' });
  assert.equal(f.matches4.count, 7); // the IPv6-only rule has no v4 part; '*' contributes to both
  // Rule 2 has a v6 destination ('*') but no v6 source, rule 3 a v6 source ('*') but no v6 destination.
  assert.equal(f.matches6.count, 1);
});

test('TCP SYN: source IP, CIDR and "*"; destination IP, CIDR and "*"; port ranges', () => {
  assert.equal(inb(f, tcp('100.64.0.2', ME4, 22)), 'accept');
  assert.equal(inb(f, tcp('100.64.0.2', ME4, 23)), 'drop');
  assert.equal(inb(f, tcp('100.64.0.3', ME4, 22)), 'drop');
  assert.equal(f.lastReason, 'tcp syn: no rules matched');
  for (const p of [80, 85, 90]) assert.equal(inb(f, tcp('100.64.1.77', ME4, p)), 'accept', `port ${p}`);
  assert.equal(inb(f, tcp('100.64.1.77', ME4, 91)), 'drop');
  assert.equal(inb(f, tcp('100.64.1.77', '192.168.10.20', 85)), 'accept'); // dst '*' within local routes
  assert.equal(inb(f, tcp('10.1.2.3', '192.168.10.20', 443)), 'accept'); // src '*'
  assert.equal(inb(f, tcp('10.1.2.3', '192.168.10.20', 444)), 'drop');
  assert.equal(inb(f, tcp('10.1.2.3', ME4, 443)), 'drop'); // dst CIDR does not hold our own address
});

test('IP ranges expand to minimal prefixes and match inclusively', () => {
  assert.deepEqual(
    parseIPSet('100.64.2.1-100.64.2.6')?.map((p) => p.bits),
    [32, 31, 31, 32],
  );
  assert.deepEqual(
    parseIPSet('2001:db8::-2001:db8::ffff')?.map((p) => p.bits),
    [112],
  );
  assert.equal(parseIPSet('0.0.0.0-255.255.255.255')?.[0].bits, 0);
  for (const last of [1, 2, 3, 4, 5, 6]) assert.equal(inb(f, tcp(`100.64.2.${last}`, ME4, 8000)), 'accept');
  assert.equal(inb(f, tcp('100.64.2.0', ME4, 8000)), 'drop');
  assert.equal(inb(f, tcp('100.64.2.7', ME4, 8000)), 'drop');
});

test('TCP non-SYN segments (including SYN+ACK) are accepted statelessly', () => {
  assert.equal(inb(f, tcp('100.64.9.9', ME4, 5555, ACK)), 'accept');
  assert.equal(inb(f, tcp('100.64.9.9', ME4, 5555, SYN | ACK)), 'accept');
  assert.equal(inb(f, tcp('100.64.9.9', ME4, 5555, TCP_FLAGS.RST)), 'accept');
  assert.equal(inb(f, tcp('100.64.9.9', ME4, 5555, SYN | TCP_FLAGS.ECE | TCP_FLAGS.CWR)), 'drop');
});

test('protocol lists: default TCP/UDP/ICMP, explicit lists, other protocols need all ports', () => {
  assert.equal(inb(f, udp('100.64.0.2', ME4, 1, 22)), 'accept'); // default protos include UDP
  assert.equal(inb(f, raw('100.64.0.2', ME4, IPPROTO.SCTP, 12)), 'drop'); // SCTP not in the default set
  assert.equal(inb(f, raw('100.64.0.5', ME4, IPPROTO.SCTP, 12)), 'accept'); // SCTP listed: port-matched like UDP
  assert.equal(inb(f, raw('100.64.0.5', ME4, 47)), 'accept'); // GRE with an all-ports rule
  assert.equal(inb(f, raw('100.64.0.6', ME4, 47)), 'drop'); // GRE listed but ports 0-100 only
  assert.equal(inb(f, raw('100.64.0.2', ME4, 47)), 'drop');
  assert.equal(inb(f, tcp('10.1.2.3', '192.168.10.20', 443)), 'accept');
  assert.equal(inb(f, udp('10.1.2.3', '192.168.10.20', 1, 443)), 'drop'); // that rule is TCP only
  assert.equal(inb(f, udp('100.64.0.7', ME4, 1, 53)), 'accept');
  assert.equal(inb(f, tcp('100.64.0.7', ME4, 53)), 'drop'); // UDP only
});

test('ICMP: replies and errors always; echo requests when any rule opens the destination', () => {
  assert.equal(inb(f, icmp('100.64.9.9', ME4, 0)), 'accept'); // echo reply
  assert.equal(inb(f, icmp('100.64.9.9', ME4, 3, 1)), 'accept'); // unreachable
  assert.equal(inb(f, icmp('100.64.9.9', ME4, 11)), 'accept'); // time exceeded
  assert.equal(inb(f, icmp('100.64.9.9', ME4, 8)), 'drop'); // echo request, unknown source
  assert.equal(inb(f, icmp('100.64.0.2', ME4, 8)), 'accept'); // some port open from .2
  assert.equal(inb(f, icmp('100.64.0.7', ME4, 8)), 'accept'); // a UDP-only rule still opens ping
  assert.equal(inb(f, icmp('10.1.2.3', '192.168.10.9', 8)), 'accept'); // TCP-only '*' rule, too
  assert.equal(inb(f, icmp('100.64.9.9', ME4, 0, 1)), 'drop'); // a "reply" with a non-zero code is not one
  assert.equal(inb(f, icmp('fd7a:115c:a1e0::9', ME6, 129)), 'accept');
  assert.equal(inb(f, icmp('fd7a:115c:a1e0::9', ME6, 2)), 'accept'); // packet too big
  assert.equal(inb(f, icmp('fd7a:115c:a1e0::9', ME6, 128)), 'drop');
  assert.equal(inb(f, icmp('fd7a:115c:a1e0::2', ME6, 128)), 'accept');
});

test('IPv6 rules match IPv6 packets only; "*" covers both families', () => {
  assert.equal(inb(f, tcp('fd7a:115c:a1e0::2', ME6, 8080)), 'accept');
  assert.equal(inb(f, tcp('fd7a:115c:a1e0::2', ME6, 8081)), 'drop');
  assert.equal(inb(f, tcp('fd7a:115c:a1e0::3', ME6, 8080)), 'drop');
  assert.equal(inb(f, tcp('fd7a:115c:a1e0::2', ME6, 22)), 'drop');
  const star = compileFilter([{ SrcIPs: ['*'], DstPorts: [port('*', 0, 65535)] }]);
  assert.equal(inb(star, tcp('fd7a:115c:a1e0::99', ME6, 1)), 'accept');
  assert.equal(inb(star, tcp('100.99.0.1', ME4, 1)), 'accept');
  const only4 = compileFilter([{ SrcIPs: ['100.64.0.0/10'], DstPorts: [port('*', 0, 65535)] }]);
  assert.equal(only4.matches6.count, 0);
  assert.equal(inb(only4, tcp('fd7a:115c:a1e0::99', ME6, 1)), 'drop');
});

test('UDP replies to flows we opened are admitted (conntrack); others need a rule', () => {
  const en = env();
  assert.equal(inb(f, udp('100.64.0.9', ME4, 53, 5000), en), 'drop');
  assert.equal(f.checkOutbound(udp(ME4, '100.64.0.9', 5000, 53), en), 'accept');
  assert.equal(inb(f, udp('100.64.0.9', ME4, 53, 5000), en), 'accept');
  assert.equal(f.lastReason, 'conntrack');
  assert.equal(inb(f, udp('100.64.0.9', ME4, 53, 5001), en), 'drop');
  assert.equal(inb(f, udp('100.64.0.9', ME4, 54, 5000), en), 'drop');
  assert.equal(inb(f, udp('100.64.0.8', ME4, 53, 5000), en), 'drop');
  // The table outlives the filter: a new compile shares the state through the env.
  assert.equal(inb(compileFilter([]), udp('100.64.0.9', ME4, 53, 5000), en), 'accept');
});

test('the flow table is an LRU of fixed size', () => {
  const t = new FlowTable(2);
  const out = (dport: number) => t.recordOutbound(udp(ME4, '100.64.0.9', 5000, dport));
  const back = (sport: number) => t.hasInbound(udp('100.64.0.9', ME4, sport, 5000));
  out(1);
  out(2);
  assert.equal(back(1), true); // refreshes 1, so 2 is now the oldest
  out(3);
  assert.deepEqual([back(1), back(2), back(3), t.size], [true, false, true, 2]);
  for (let i = 0; i < 2000; i++) out(1000 + (i % 700));
  assert.equal(t.size, 2);
  assert.deepEqual([back(1599), back(1598), back(1597)], [true, true, false]);
  assert.equal(new FlowTable().capacity, 512);
});

test('TSMP is accepted; pre-checks: keepalive, malformed, multicast, link-local, fragments, local dst', () => {
  assert.equal(inb(f, raw('100.64.9.9', ME4, IPPROTO.TSMP)), 'accept');
  assert.equal(inb(f, raw('100.64.9.9', '100.64.0.50', IPPROTO.TSMP)), 'drop'); // not local
  assert.equal(inb(f, tcp('100.64.0.2', '100.64.0.50', 22, ACK)), 'drop');
  assert.equal(f.lastReason, 'destination not local');
  assert.equal(inb(f, parsePacket(new Uint8Array(0), P)), 'accept');
  assert.equal(inb(f, parsePacket(new Uint8Array(19).fill(0x45), P)), 'drop');
  const truncated = buildIpPacket({ src: '100.64.0.2', dst: ME4, proto: IPPROTO.TCP }, tcpSegment(1, 22, SYN));
  assert.equal(inb(f, parsePacket(truncated.subarray(0, 30), P)), 'drop');
  const local = new AddrSet(['0.0.0.0/0', '::/0']);
  for (const dst of ['224.0.0.251', '239.1.2.3', '169.254.1.1']) {
    assert.equal(inb(f, tcp('100.64.0.2', dst, 22, ACK), { local }), 'drop', dst);
  }
  for (const dst of ['ff02::1', 'fe80::1', 'febf::1', '::ffff:224.0.0.1']) {
    assert.equal(inb(f, tcp('fd7a:115c:a1e0::2', dst, 22, ACK), { local }), 'drop', dst);
  }
  assert.equal(inb(f, tcp('100.64.0.2', '169.254.169.254', 80, ACK), { local }), 'accept'); // cloud metadata
  assert.equal(inb(f, tcp('fd7a:115c:a1e0::2', 'fec0::1', 22, ACK), { local }), 'accept'); // not fe80::/10
  const frag = buildIpPacket(
    { src: '100.64.9.9', dst: '100.64.0.77', proto: IPPROTO.UDP, fragOffset: 1480 },
    new Uint8Array(20),
  );
  assert.equal(inb(f, parsePacket(frag, P)), 'accept'); // later fragments pass, before the local check
  const tiny = buildIpPacket({ src: '100.64.9.9', dst: ME4, proto: IPPROTO.TCP, fragOffset: 16 }, new Uint8Array(20));
  assert.equal(inb(f, parsePacket(tiny, P)), 'drop');
  const frag6 = buildIpPacket(
    { src: 'fd7a:115c:a1e0::9', dst: ME6, proto: IPPROTO.TCP, ext: [{ type: 44, fragOffset: 1232, more: false }] },
    new Uint8Array(16),
  );
  assert.equal(inb(f, parsePacket(frag6, P)), 'accept');
  const first6 = buildIpPacket(
    {
      src: 'fd7a:115c:a1e0::2',
      dst: ME6,
      proto: IPPROTO.TCP,
      ext: [{ type: 0 }, { type: 44, fragOffset: 0, more: true }],
    },
    tcpSegment(1, 8080, SYN, new Uint8Array(100)),
  );
  assert.equal(inb(f, parsePacket(first6, P)), 'accept'); // ports read through extension headers
});

test('no netmap (empty local set) drops everything; an empty rule list still lets replies in', () => {
  const none = env({ local: new AddrSet() });
  assert.equal(inb(f, tcp('100.64.0.2', ME4, 22), none), 'drop');
  assert.equal(inb(f, tcp('100.64.0.2', ME4, 22, ACK), none), 'drop');
  assert.equal(inb(f, raw('100.64.0.2', ME4, IPPROTO.TSMP), none), 'drop');
  for (const empty of [compileFilter([]), compileFilter(null)]) {
    assert.equal(inb(empty, tcp('100.64.0.2', ME4, 22)), 'drop');
    assert.equal(inb(empty, icmp('100.64.0.2', ME4, 8)), 'drop');
    assert.equal(inb(empty, tcp('100.64.0.2', ME4, 22, ACK)), 'accept');
    assert.equal(inb(empty, icmp('100.64.0.2', ME4, 0)), 'accept');
    assert.equal(inb(empty, raw('100.64.0.2', ME4, IPPROTO.TSMP)), 'accept');
  }
});

test('malformed rule entries are skipped and counted; the rest still apply', () => {
  const bad = [
    'not a rule',
    {
      SrcIPs: ['1.2.3', '100.64.0.1/24', '100.64.0.9-100.64.0.1', 7, 'fe80::1%eth0', '100.64.0.2'],
      DstPorts: [port(ME4, 22)],
    },
    { SrcIPs: ['*'], DstPorts: [port(ME4, 70000), port(ME4, 30, 20), port('cap:x', 1), { IP: ME4 }, port(ME4, 25)] },
    { SrcIPs: ['*'], DstPorts: [port(ME4, 26)], IPProto: [-1, 300, 'x', 1.5] },
  ] as unknown as FilterRule[];
  const c = compileFilter(bad);
  assert.equal(c.stats.rules, 4);
  assert.equal(c.stats.skipped, 1 + 5 + 4 + 4);
  assert.match(c.stats.firstError, /rule is not an object/);
  assert.equal(inb(c, tcp('100.64.0.2', ME4, 22)), 'accept');
  assert.equal(inb(c, tcp('100.64.0.3', ME4, 25)), 'accept');
  assert.equal(inb(c, tcp('100.64.0.3', ME4, 26)), 'drop'); // every listed protocol was invalid
  assert.equal(inb(c, icmp('100.64.0.3', ME4, 8)), 'accept'); // but ICMP ignores the protocol list
});

test('deprecated SrcBits/Bits or an admitted UnsignedPeerAPIOnly peer discard the whole filter', () => {
  const good = { SrcIPs: ['*'], DstPorts: [port('*', 0, 65535)] };
  const srcBits = compileFilter([good, { ...good, SrcBits: [32] } as FilterRule]);
  assert.match(srcBits.stats.rejected, /SrcBits/);
  assert.equal(inb(srcBits, tcp('100.64.0.2', ME4, 22)), 'drop');
  const bits = compileFilter([{ SrcIPs: ['*'], DstPorts: [{ IP: ME4, Bits: 32, Ports: { First: 1, Last: 2 } }] }]);
  assert.match(bits.stats.rejected, /Bits/);
  const unsigned = compileFilter([good], { unsignedPeerAPIOnly: ['100.64.0.66/32'] });
  assert.match(unsigned.stats.rejected, /UnsignedPeerAPIOnly/);
  assert.equal(unsigned.matches4.count, 0);
  const fine = compileFilter([RULES[0]], { unsignedPeerAPIOnly: ['100.64.0.66/32'] });
  assert.equal(fine.stats.rejected, '');
});

test('cap: sources, PeerAPI override, CapGrant lookups', () => {
  const rules: FilterRule[] = [
    { SrcIPs: ['cap:funnel'], DstPorts: [port(ME4, 443)] },
    {
      SrcIPs: ['100.64.0.2'],
      CapGrant: [{ Dsts: ['100.64.0.1/32'], CapMap: { 'tailscale.com/cap/file-sharing-target': [{}] } }],
    },
  ];
  const c = compileFilter(rules);
  const withCaps = env({ srcHasCap: (v, src, cap) => v === 4 && src[0] === 0x64400003 && cap === 'funnel' });
  assert.equal(inb(c, tcp('100.64.0.3', ME4, 443), withCaps), 'accept');
  assert.equal(inb(c, tcp('100.64.0.4', ME4, 443), withCaps), 'drop');
  assert.equal(inb(c, tcp('100.64.0.3', ME4, 443)), 'drop'); // no capability oracle
  assert.equal(inb(c, tcp('100.64.0.2', ME4, 22)), 'drop'); // a CapGrant opens no packets
  const caps = c.capsWithValues('100.64.0.2', ME4);
  assert.deepEqual([...caps.entries()], [['tailscale.com/cap/file-sharing-target', [{}]]]);
  assert.equal(c.capsWithValues('100.64.0.3', ME4).size, 0);
  assert.equal(c.capsWithValues('100.64.0.2', '100.64.0.9').size, 0);
  const api = env({ peerApi: { addrs: new AddrSet([ME4, ME6]), port4: 41641, port6: 41642 } });
  const empty = compileFilter([]);
  assert.equal(inb(empty, tcp('100.64.0.9', ME4, 41641), api), 'accept');
  assert.equal(empty.lastReason, 'peerapi');
  assert.equal(inb(empty, tcp('100.64.0.9', ME4, 41642), api), 'drop');
  assert.equal(inb(empty, tcp('fd7a:115c:a1e0::9', ME6, 41642), api), 'accept');
  assert.equal(inb(empty, tcp('100.64.0.9', '192.168.10.1', 41641), api), 'drop'); // only our own address
});

test('outbound: pre-checks then accept; per-packet checks are cheap', () => {
  assert.equal(f.checkOutbound(tcp(ME4, '100.64.0.2', 22), e), 'accept');
  assert.equal(f.checkOutbound(udp(ME4, '224.0.0.251', 5353, 5353), e), 'drop');
  const pkt = buildIpPacket({ src: '100.64.1.7', dst: ME4, proto: IPPROTO.TCP }, tcpSegment(1, 85, SYN));
  const start = process.hrtime.bigint();
  for (let i = 0; i < 200_000; i++) f.checkInbound(parsePacket(pkt, P), e);
  const nsPerPacket = Number(process.hrtime.bigint() - start) / 200_000;
  assert.ok(nsPerPacket < 5_000, `${nsPerPacket} ns per parse+check`);
});
