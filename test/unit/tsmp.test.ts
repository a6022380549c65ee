// TSMP pings get tailscaled's pong (docs/protocol/services.md §4.11.6): addresses swapped, the 8 ping bytes echoed, the PeerAPI
// port appended, the IPv4 identification / IPv6 flow label flipped, a valid IPv4 header checksum; anything that is
// not a whole ping gets none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildIpPacket, tcpSegment } from '../../main/engine/packet/build.ts';
import { internetChecksum } from '../../main/engine/packet/checksum.ts';
import { IPPROTO, PacketInfo, parsePacket } from '../../main/engine/packet/parse.ts';
import { REJECT_ACL, TSMP_PING, TSMP_PONG, TSMP_REJECT, tsmpPong, tsmpReject } from '../../main/engine/packet/tsmp.ts';

const DATA = [1, 2, 3, 4, 5, 6, 7, 8];
const ping = (src: string, dst: string, body = [TSMP_PING, ...DATA], extra: object = {}) =>
  buildIpPacket({ src, dst, proto: IPPROTO.TSMP, id: 0x1234, ...extra }, Uint8Array.from(body));

function pongOf(pkt: Uint8Array, port = 45061): { pong: Uint8Array | undefined; p: PacketInfo } {
  const p = parsePacket(pkt, new PacketInfo());
  return { pong: tsmpPong(pkt, p, port), p };
}

test('an IPv4 TSMP ping gets a pong from the pinged address with the PeerAPI port', () => {
  const { pong } = pongOf(ping('100.64.0.2', '100.64.0.1'));
  assert.ok(pong);
  const q = parsePacket(pong, new PacketInfo());
  assert.equal(q.status, 'ok');
  assert.equal(q.proto, IPPROTO.TSMP);
  assert.deepEqual([...pong.subarray(12, 16)], [100, 64, 0, 1]);
  assert.deepEqual([...pong.subarray(16, 20)], [100, 64, 0, 2]);
  assert.equal((pong[4] << 8) | pong[5], ~0x1234 & 0xffff);
  assert.equal(internetChecksum(pong.subarray(0, 20)), 0, 'header checksum');
  assert.deepEqual([...pong.subarray(20)], [TSMP_PONG, ...DATA, 45061 >> 8, 45061 & 0xff]);
  assert.equal((pong[2] << 8) | pong[3], pong.length);
});

test('an IPv6 TSMP ping gets a pong too', () => {
  const { pong } = pongOf(ping('fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::1'), 0);
  assert.ok(pong);
  const q = parsePacket(pong, new PacketInfo());
  assert.equal(q.status, 'ok');
  assert.equal(q.version, 6);
  assert.equal(pong[23], 1, 'source ends in ::1');
  assert.equal(pong[39], 2, 'destination ends in ::2');
  assert.deepEqual([...pong.subarray(40)], [TSMP_PONG, ...DATA, 0, 0]);
});

test('no pong for anything but a whole ping', () => {
  assert.equal(pongOf(ping('100.64.0.2', '100.64.0.1', [TSMP_PONG, ...DATA])).pong, undefined, 'a pong');
  assert.equal(pongOf(ping('100.64.0.2', '100.64.0.1', [TSMP_PING, 1, 2])).pong, undefined, 'short');
  assert.equal(pongOf(ping('100.64.0.2', '100.64.0.1', [0x61, ...DATA])).pong, undefined, 'disco-key advert');
  const frag = ping('100.64.0.2', '100.64.0.1', [TSMP_PING, ...DATA], { moreFragments: true });
  assert.equal(pongOf(frag).pong, undefined, 'first fragment');
  const udp = buildIpPacket({ src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.UDP }, new Uint8Array(17));
  assert.equal(pongOf(udp).pong, undefined, 'not TSMP');
});

test("a dropped IPv4 TCP SYN gets tailscaled's rejection notice; nothing else does", () => {
  const syn = buildIpPacket(
    { src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.TCP },
    tcpSegment(40000, 7000, 0x02),
  );
  const p = parsePacket(syn, new PacketInfo());
  const notice = tsmpReject(syn, p);
  assert.ok(notice);
  assert.equal(parsePacket(notice, new PacketInfo()).status, 'ok');
  assert.deepEqual([...notice.subarray(12, 20)], [100, 64, 0, 1, 100, 64, 0, 2]);
  assert.equal(internetChecksum(notice.subarray(0, 20)), 0);
  assert.deepEqual(
    [...notice.subarray(20)],
    [TSMP_REJECT, IPPROTO.TCP, REJECT_ACL, 40000 >> 8, 40000 & 0xff, 7000 >> 8, 7000 & 0xff],
  );
  const ack = buildIpPacket(
    { src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.TCP },
    tcpSegment(40000, 7000, 0x10),
  );
  assert.equal(tsmpReject(ack, parsePacket(ack, new PacketInfo())), undefined, 'not a SYN');
  const syn6 = buildIpPacket({ src: 'fd7a::2', dst: 'fd7a::1', proto: IPPROTO.TCP }, tcpSegment(40000, 7000, 0x02));
  assert.equal(tsmpReject(syn6, parsePacket(syn6, new PacketInfo())), undefined, 'IPv6: tailscaled sends none');
  const udp = buildIpPacket({ src: '100.64.0.2', dst: '100.64.0.1', proto: IPPROTO.UDP }, new Uint8Array(8));
  assert.equal(tsmpReject(udp, parsePacket(udp, new PacketInfo())), undefined, 'UDP');
});
