// Writes the seed corpora in test/fuzz/corpus/<target>/: a few well-formed inputs per target, made with the
// engine's own builders, so the fuzzer starts past the first length and magic checks. Deterministic (fixed
// keys, IDs and nonces), so regenerating gives the same files: node --import tsx test/fuzz/make-seeds.ts
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import {
  buildFrame,
  buildPeerGone,
  buildPing,
  buildRecvPacket,
  buildServerKey,
  FrameType,
} from '../../main/engine/derp/frames.ts';
import { buildMessage } from '../../main/engine/disco/message.ts';
import { buildIpPacket, icmpMessage, tcpSegment, udpDatagram } from '../../main/engine/packet/build.ts';
import { IPPROTO } from '../../main/engine/packet/parse.ts';
import { bindingRequest } from '../../main/engine/stun/stun.ts';

const here = dirname(fileURLToPath(import.meta.url));
const enc = new TextEncoder();
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const u8 = (...b: number[]): Uint8Array => Uint8Array.from(b);
const be16 = (n: number): Uint8Array => u8(n >> 8, n & 0xff);
const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
/** Length-prefixed records, the framing the batch targets read. */
const batch = (...pkts: Uint8Array[]): Uint8Array => cat(...pkts.flatMap((p) => [be16(p.length), p]));

const seeds: Record<string, Uint8Array[]> = {};

// STUN: a binding success with XOR-MAPPED-ADDRESS (IPv4, then IPv6) and one with plain MAPPED-ADDRESS.
{
  const tx = fill(12, 0x11);
  const resp = (attrs: Uint8Array) => {
    const h = new Uint8Array(20);
    const v = new DataView(h.buffer);
    v.setUint16(0, 0x0101);
    v.setUint16(2, attrs.length);
    v.setUint32(4, 0x2112a442);
    h.set(tx, 8);
    return cat(h, attrs);
  };
  seeds.stun = [
    resp(cat(u8(0x00, 0x20, 0, 8, 0, 1), be16(0x1234 ^ 0x2112), u8(0xe1, 0x12, 0xa6, 0x43))),
    resp(cat(u8(0x00, 0x20, 0, 20, 0, 2), be16(0x5678), fill(16, 0x42))),
    resp(cat(u8(0x00, 0x01, 0, 8, 0, 1), be16(41641), u8(192, 0, 2, 1))),
    bindingRequest(tx),
  ];
}

// IP packets: UDP, TCP with payload, ICMP echo, IPv6 TCP behind a hop-by-hop header, a non-first fragment.
const tcp4 = buildIpPacket(
  { src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.TCP },
  tcpSegment(40000, 22, 0x18, enc.encode('SSH-2.0-x\r\n'), 1000, 2000),
);
const udp4 = buildIpPacket(
  { src: '100.64.0.2', dst: '100.100.100.100', proto: IPPROTO.UDP },
  udpDatagram(5353, 53, fill(12, 0)),
);
const icmp4 = buildIpPacket({ src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.ICMP }, icmpMessage(8, 0));
const tcp6 = buildIpPacket(
  { src: 'fd7a:115c:a1e0::2', dst: 'fd7a:115c:a1e0::1', proto: IPPROTO.TCP, ext: [{ type: 0 }] },
  tcpSegment(40000, 443, 0x02),
);
const frag4 = buildIpPacket(
  { src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.UDP, fragOffset: 1480, moreFragments: false },
  fill(40, 0x55),
);
seeds['packet-parse'] = [tcp4, udp4, icmp4, tcp6, frag4];

// TSO: a TCP/IPv4 super-packet of 3000 payload bytes cut at MSS 1000, an IPv6 one, a UDP packet needing its checksum.
{
  const vnet = (flags: number, gso: number, hdrLen: number, mss: number, start: number, off: number) => {
    const h = new Uint8Array(10);
    const v = new DataView(h.buffer);
    h[0] = flags;
    h[1] = gso;
    v.setUint16(2, hdrLen, true);
    v.setUint16(4, mss, true);
    v.setUint16(6, start, true);
    v.setUint16(8, off, true);
    return h;
  };
  const big4 = buildIpPacket(
    { src: '100.64.0.1', dst: '100.64.0.2', proto: IPPROTO.TCP, checksum: false },
    tcpSegment(22, 40000, 0x18, fill(3000, 0x61), 5, 6),
  );
  const big6 = buildIpPacket(
    { src: 'fd7a:115c:a1e0::1', dst: 'fd7a:115c:a1e0::2', proto: IPPROTO.TCP, checksum: false },
    tcpSegment(22, 40000, 0x19, fill(2500, 0x62), 5, 6),
  );
  seeds['tso-split'] = [
    cat(vnet(1, 1, 40, 1000, 20, 16), big4),
    cat(vnet(1, 4, 60, 1220, 40, 16), big6),
    cat(vnet(1, 0, 0, 0, 20, 6), udp4),
    cat(vnet(0, 0, 0, 0, 0, 0), icmp4),
  ];
}

// TCP coalescing: three in-order segments of one flow, then an unrelated UDP packet.
{
  const seg = (seq: number, flags: number) =>
    buildIpPacket(
      { src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.TCP },
      tcpSegment(40000, 22, flags, fill(100, seq & 0xff), seq, 7),
    );
  seeds['tcp-coalesce'] = [
    batch(seg(1000, 0x10), seg(1100, 0x10), seg(1200, 0x18), udp4),
    batch(
      buildIpPacket(
        { src: 'fd7a:115c:a1e0::2', dst: 'fd7a:115c:a1e0::1', proto: IPPROTO.TCP },
        tcpSegment(1, 2, 0x10, fill(64, 1), 10, 1),
      ),
      buildIpPacket(
        { src: 'fd7a:115c:a1e0::2', dst: 'fd7a:115c:a1e0::1', proto: IPPROTO.TCP },
        tcpSegment(1, 2, 0x10, fill(64, 2), 74, 1),
      ),
    ),
  ];
}

// The userspace stack: a handshake to the listener with data, FIN and a timer tick; an echo request; a UDP datagram.
{
  const to = (flags: number, seq: number, ack: number, payload?: Uint8Array) =>
    buildIpPacket(
      { src: '100.64.0.9', dst: '100.64.0.1', proto: IPPROTO.TCP },
      tcpSegment(40000, 80, flags, payload, seq, ack),
    );
  const ping = buildIpPacket(
    { src: '100.64.0.9', dst: '100.64.0.1', proto: IPPROTO.ICMP },
    icmpMessage(8, 0, fill(12, 1)),
  );
  const dgram = buildIpPacket(
    { src: '100.64.0.9', dst: '100.64.0.1', proto: IPPROTO.UDP },
    udpDatagram(5000, 7, fill(20, 2)),
  );
  seeds.netstack = [
    batch(to(0x02, 1000, 0), to(0x10, 1001, 0), to(0x18, 1001, 0, fill(50, 3)), new Uint8Array(0), to(0x11, 1051, 0)),
    batch(ping, dgram, to(0x02, 5, 0), new Uint8Array(0), new Uint8Array(0)),
  ];
}

// DERP frames (first byte: how many reads to cut the stream into; second: the frame size limit switch).
{
  const key = fill(32, 0x33);
  const stream = cat(
    buildServerKey(key),
    buildRecvPacket(key, fill(60, 0x44)),
    buildPing(fill(8, 1)),
    buildPeerGone(key, 1),
    buildFrame(FrameType.Health, enc.encode('no home')),
    buildFrame(FrameType.Restarting, u8(0, 0, 1, 0, 0, 0, 2, 0)),
    buildFrame(0x7f, fill(10, 0)),
  );
  seeds['derp-frames'] = [cat(u8(0, 0), stream), cat(u8(3, 1), stream)];
}

// DERP upgrade answers and ServerInfo JSON (first byte: even = upgrade answer, odd = ServerInfo plaintext).
seeds['derp-handshake'] = [
  cat(
    u8(0),
    enc.encode(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nDerp-Public-Key: ${'ab'.repeat(32)}\r\n\r\n`),
    buildServerKey(fill(32, 0xab)),
  ),
  cat(u8(4), enc.encode('HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!')),
  cat(u8(1), enc.encode('{"version":2,"TokenBucketBytesPerSecond":1000000,"TokenBucketBytesBurst":2000000}')),
];

// DNS (first byte: 0 UDP query, 1 TCP query, 2 upstream answer after its query, 3 SERVFAIL for a query).
{
  const q = (name: string, type: string, edns = false) =>
    new Uint8Array(
      dnsPacket.encode({
        type: 'query',
        id: 0x1234,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: type as 'A', name }],
        additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never] : [],
      }),
    );
  const a = new Uint8Array(
    dnsPacket.encode({
      type: 'response',
      id: 0x1234,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [{ type: 'A', name: 'example.com' }],
      answers: [{ type: 'A', name: 'example.com', ttl: 60, data: '192.0.2.80' }],
    }),
  );
  const query = q('example.com', 'A');
  seeds['dns-query'] = [
    cat(u8(0), q('peer.tailnet.test', 'A')),
    cat(u8(0), q('six.tailnet.test', 'AAAA', true)),
    cat(u8(1), q('2.0.64.100.in-addr.arpa', 'PTR')),
    cat(u8(0), q('host.corp.example', 'TXT')),
    cat(u8(0), q('nothere.tailnet.test', 'ANY')),
    cat(u8(2), cat(query, a).subarray(0, 2 * query.length) /* query, then the answer's first part */),
    cat(u8(2), query, a.subarray(0, query.length)),
    cat(u8(3), query),
  ];
  // An exact split for mode 2: the target cuts the body in half, so pad the query to the answer's length.
  seeds['dns-query'].push(cat(u8(2), cat(query, fill(a.length - query.length, 0)), a));
}

// DNS over TCP to quad-100: SYN (with MSS), the query in one segment, FIN.
{
  const q = new Uint8Array(
    dnsPacket.encode({ type: 'query', id: 7, flags: 0, questions: [{ type: 'A', name: 'peer.tailnet.test' }] }),
  );
  const seg = (flags: number, seq: number, payload: Uint8Array, options: Uint8Array = new Uint8Array(0)) => {
    const t = tcpSegment(40001, 53, flags, payload, seq, 1);
    const withOpts = cat(t.subarray(0, 20), options, payload);
    withOpts[12] = ((20 + options.length) / 4) << 4;
    return buildIpPacket({ src: '100.64.0.1', dst: '100.100.100.100', proto: IPPROTO.TCP }, withOpts);
  };
  seeds['quad100-tcp'] = [
    batch(
      seg(0x02, 100, new Uint8Array(0), u8(2, 4, 0x05, 0xb4)),
      seg(0x18, 101, cat(be16(q.length), q)),
      seg(0x11, 101 + 2 + q.length, new Uint8Array(0)),
    ),
    batch(seg(0x10, 5, enc.encode('stray'))),
  ];
}

// PeerAPI: a Range header, names as they come in /v0/put/<name>.
seeds.peerapi = ['bytes=1048576-', 'photo%20(1).jpg', '%E2%82%AC%20report.tar.gz?x=1', 'a%2F..%2Fb', '%C0%AF'].map(
  (s) => enc.encode(s),
);

// Netmap: a full map, then a delta (NUL-separated, as the target reads them).
{
  const node = (id: number, name: string, ip: string) => ({
    ID: id,
    StableID: `n${id}CNTRL`,
    Name: `${name}.tailnet.test.`,
    User: 1,
    Key: `nodekey:${'12'.repeat(32)}`,
    DiscoKey: `discokey:${'34'.repeat(32)}`,
    Addresses: [`${ip}/32`],
    AllowedIPs: [`${ip}/32`],
    Endpoints: ['192.0.2.9:41641'],
    HomeDERP: 1,
    Hostinfo: { Hostname: name, OS: 'linux', Services: [{ Proto: 'peerapi4', Port: 12345 }] },
    Online: true,
    KeyExpiry: '2030-01-01T00:00:00Z',
    CapMap: { 'https://tailscale.com/cap/file-sharing': null },
  });
  const full = {
    Node: node(1, 'self', '100.64.0.1'),
    Peers: [node(2, 'peer', '100.64.0.2')],
    DERPMap: {
      Regions: {
        '1': {
          RegionID: 1,
          RegionCode: 'lab',
          Nodes: [{ Name: '1a', RegionID: 1, HostName: 'derp.test', STUNPort: 3478 }],
        },
      },
    },
    DNSConfig: { Resolvers: [{ Addr: '192.0.2.53' }], Domains: ['tailnet.test'], Proxied: true },
    Domain: 'tailnet.test',
    UserProfiles: [{ ID: 1, LoginName: 'me@test', DisplayName: 'Me' }],
    PacketFilter: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }],
  };
  const delta = {
    PeersChangedPatch: [{ NodeID: 2, DERPRegion: 2, Endpoints: ['198.51.100.1:1'], Online: false }],
    OnlineChange: { '2': true },
    PeerSeenChange: { '2': true },
    PacketFilters: {
      base: [
        { SrcIPs: ['100.64.0.0/10'], DstPorts: [{ IP: '100.64.0.1', Ports: { First: 22, Last: 22 } }], IPProto: [6] },
      ],
    },
  };
  seeds.netmap = [
    enc.encode(JSON.stringify(full)),
    enc.encode(`${JSON.stringify(full)}\0${JSON.stringify(delta)}\0{"PeersRemoved":[2]}`),
    enc.encode('{"KeepAlive":true}'),
  ];
}

// Disco (first byte: odd = the rest is sealed here as plaintext from a known peer).
seeds.disco = [
  cat(u8(1), buildMessage({ type: 'ping', txId: fill(12, 1), nodeKey: fill(32, 2), padding: 0 })),
  cat(u8(1), buildMessage({ type: 'pong', txId: fill(12, 1), src: { ip: '192.0.2.1', port: 41641 } })),
  cat(
    u8(1),
    buildMessage({
      type: 'callMeMaybe',
      endpoints: [
        { ip: '2001:db8::1', port: 1 },
        { ip: '192.0.2.2', port: 2 },
      ],
    }),
  ),
  cat(u8(0), u8(0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac), fill(32, 9), fill(24, 0), fill(30, 1)),
];

// ts2021 records (op, length, bytes; op bit 0 = seal as the next record): EarlyNoise then HTTP/2's preface.
{
  const json = enc.encode('{"nodeKeyChallenge":"chalpub:abcd"}');
  const early = cat(u8(0xff, 0xff, 0xff, 0x54, 0x53), u8(0, 0, 0, json.length), json);
  const h2 = enc.encode('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  seeds['noise-records'] = [
    cat(u8(1), be16(early.length), early, u8(1), be16(h2.length), h2),
    cat(u8(1), be16(5), early.subarray(0, 5), u8(1), be16(early.length - 5), early.subarray(5)),
    cat(u8(0), be16(5), u8(4, 0, 40, 0, 0)),
  ];
}

// ts2021 handshake answers (first byte: bit 6 = the rest goes behind a well-formed header; low 6 bits all set = also
// run the whole finish()).
seeds['noise-handshake'] = [
  cat(u8(0x40), fill(48, 5)),
  cat(u8(0x7f), fill(48, 6)),
  cat(u8(0), u8(3, 0, 4), enc.encode('nope')),
  cat(u8(0), u8(2, 0, 48), fill(48, 1)),
];

// WireGuard (first byte: 0 raw, 1 handshake with mac1 filled in, 2 inner packet sealed as transport data).
{
  const inner = buildIpPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: IPPROTO.UDP }, udpDatagram(1, 2, fill(30, 3)));
  const inner6 = buildIpPacket({ src: 'fd00::1', dst: 'fd00::2', proto: IPPROTO.TCP }, tcpSegment(1, 2, 0x02));
  const msg = (type: number, size: number) => {
    const m = new Uint8Array(size);
    m[0] = type;
    return m;
  };
  seeds['wg-receive'] = [
    cat(u8(2), inner),
    cat(u8(2), inner6),
    cat(u8(1), msg(1, 148)),
    cat(u8(0x81), msg(2, 92)),
    cat(u8(0), msg(3, 64)),
    cat(u8(0), msg(4, 48)),
  ];
}

for (const [target, list] of Object.entries(seeds)) {
  const dir = join(here, 'corpus', target);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [i, s] of list.entries()) writeFileSync(join(dir, `seed-${String(i).padStart(2, '0')}`), s);
}
console.log(
  `seeds: ${Object.values(seeds).reduce((n, l) => n + l.length, 0)} files for ${Object.keys(seeds).length} targets`,
);
