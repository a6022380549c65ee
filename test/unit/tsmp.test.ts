// TSMP pings get tailscaled's pong (services.md §4.11.6): addresses swapped, the 8 ping bytes echoed, the PeerAPI
// port appended, the IPv4 identification / IPv6 flow label flipped, a valid IPv4 header checksum; anything that is
// not a whole ping gets none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildIpPacket } from '../../main/engine/packet/build.ts';
import { internetChecksum } from '../../main/engine/packet/checksum.ts';
import { IPPROTO, PacketInfo, parsePacket } from '../../main/engine/packet/parse.ts';
import { TSMP_PING, TSMP_PONG, tsmpPong } from '../../main/engine/packet/tsmp.ts';

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
