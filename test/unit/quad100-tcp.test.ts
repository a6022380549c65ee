// The TCP responder of quad-100 with hand-made segments: handshake, a query split over two segments, the answer
// in MSS-sized pieces and a FIN, a RST for segments of no connection, and a bound on half-open connections.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Quad100Tcp } from '../../main/engine/dns/quad100-tcp.ts';
import { buildIpPacket, tcpSegment } from '../../main/engine/packet/build.ts';
import { IPPROTO, PacketInfo, parsePacket, TCP_FLAGS } from '../../main/engine/packet/parse.ts';

const CLIENT = '100.64.0.1';
const { SYN, ACK, PSH, FIN, RST } = TCP_FLAGS;

function segment(port: number, flags: number, seq: number, ack: number, data = new Uint8Array(0)): Uint8Array {
  return buildIpPacket(
    { src: CLIENT, dst: '100.100.100.100', proto: IPPROTO.TCP },
    tcpSegment(port, 53, flags, data, seq, ack),
  );
}

interface Seg {
  flags: number;
  seq: number;
  ack: number;
  data: Uint8Array;
}

function harness(answer: (q: Uint8Array) => Uint8Array | undefined) {
  const out: Seg[] = [];
  const tcp = new Quad100Tcp(
    async (q) => answer(q),
    (pkt) => {
      const p = parsePacket(pkt, new PacketInfo());
      assert.equal(p.status, 'ok');
      const t = p.transportOffset;
      const v = new DataView(pkt.buffer, pkt.byteOffset + t);
      out.push({
        flags: pkt[t + 13],
        seq: v.getUint32(4),
        ack: v.getUint32(8),
        data: pkt.slice(t + 20, t + p.transportLength),
      });
    },
  );
  const feed = (pkt: Uint8Array) => tcp.handle(pkt, parsePacket(pkt, new PacketInfo()));
  return { out, feed };
}

test('handshake, a query in two segments, the answer in MSS-sized pieces, then FIN', async () => {
  const big = new Uint8Array(1500).fill(7); // longer than the default MSS of 536: three data segments
  const { out, feed } = harness((q) => (q.length === 12 ? big : undefined));
  feed(segment(40000, SYN, 1000, 0));
  const synAck = out.shift();
  assert.ok(synAck && synAck.flags === (SYN | ACK) && synAck.ack === 1001);
  const query = new Uint8Array(14);
  query[1] = 12; // length prefix 12, then a 12-byte "query"
  feed(segment(40000, ACK, 1001, synAck.seq + 1, query.subarray(0, 5)));
  feed(segment(40000, ACK | PSH, 1006, synAck.seq + 1, query.subarray(5)));
  await new Promise((r) => setImmediate(r));
  const data = out.filter((s) => s.data.length > 0);
  assert.ok(data.every((s) => s.data.length <= 536));
  const stream = Buffer.concat(data.map((s) => s.data));
  assert.equal(stream.readUInt16BE(0), 1500);
  assert.deepEqual(new Uint8Array(stream.subarray(2)), big);
  assert.equal(out.at(-1)?.flags, ACK | FIN, 'ends with FIN');
  assert.ok(out.filter((s) => s.data.length === 0 && s.flags === ACK).every((s) => s.ack <= 1015));
});

test('a segment of no connection gets a RST; an unanswerable query resets; SYNs beyond 256 get silence', async () => {
  const { out, feed } = harness(() => undefined);
  feed(segment(40001, ACK | PSH, 5, 9, new Uint8Array([0, 1, 2])));
  assert.equal((out.pop()?.flags ?? 0) & RST, RST);
  feed(segment(40002, SYN, 100, 0));
  const sa = out.pop();
  feed(segment(40002, ACK | PSH, 101, (sa?.seq ?? 0) + 1, new Uint8Array([0, 2, 9, 9])));
  await new Promise((r) => setImmediate(r));
  assert.equal((out.at(-1)?.flags ?? 0) & RST, RST, 'no answer: reset');
  out.length = 0;
  for (let i = 0; i < 300; i++) feed(segment(41000 + i, SYN, i, 0));
  assert.ok(out.length <= 256, `${out.length} SYN-ACKs for 300 SYNs`);
});
