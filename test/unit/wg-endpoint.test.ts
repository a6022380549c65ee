// The endpoint WireGuard sends to is opaque to it: a UDP address for plain WireGuard, magicsock's per-peer path on
// the tailnet. Two devices in memory whose peers' endpoints are path objects (as magicsock hands them over), and the
// UDP endpoint's own forms.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { PeerPath } from '../../main/engine/magicsock/peer-path.ts';
import { parsePrefix } from '../../main/engine/packet/ip.ts';
import { generateKeyPair } from '../../main/engine/wg/crypto.ts';
import { Device } from '../../main/engine/wg/device.ts';
import { Endpoint, endpointOf, type PeerEndpoint, parseEndpoint, sameEndpoint } from '../../main/engine/wg/endpoint.ts';
import { receiveDatagram } from '../../main/engine/wg/receive.ts';
import { sendPacket } from '../../main/engine/wg/send.ts';
import { ipv4Packet } from './ip-packet.ts';

/** A path endpoint standing in for magicsock's: it names a peer, not an address. */
class TestPath implements PeerEndpoint {
  readonly macSource: Uint8Array;
  constructor(readonly rateKey: string) {
    this.macSource = new TextEncoder().encode(rateKey);
  }
  describe(): string {
    return `path to ${this.rateKey}`;
  }
}

function pathPair(underLoadRateB?: number) {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const toA = new TestPath('a');
  const toB = new TestPath('b');
  const a = new Device({ privateKey: ka.privateKey, mtu: 1280, roaming: false });
  const b = new Device({ privateKey: kb.privateKey, mtu: 1280, roaming: false, underLoadRate: underLoadRateB });
  a.setPeer({ publicKey: kb.publicKey, endpoint: toB, allowedIPs: [parsePrefix('100.64.0.2/32')] });
  b.setPeer({ publicKey: ka.publicKey, endpoint: toA, allowedIPs: [parsePrefix('100.64.0.1/32')] });
  const sent: Array<{ from: 'a' | 'b'; to: PeerEndpoint; msg: Uint8Array }> = [];
  const got = { a: [] as Uint8Array[], b: [] as Uint8Array[] };
  for (const [dev, name] of [
    [a, 'a'],
    [b, 'b'],
  ] as const) {
    dev.attach({
      sendDatagram: (msg, to) => sent.push({ from: name, to, msg: new Uint8Array(msg) }),
      writePacket: (p) => got[name].push(new Uint8Array(p)),
      flush: () => {},
    });
  }
  return { a, b, toA, toB, sent, got };
}

test('a device sends each peer datagram to the endpoint object it was given, and keeps it (no roaming)', () => {
  const { a, b, toA, toB, sent, got } = pathPair();
  sendPacket(a, ipv4Packet('100.64.0.1', '100.64.0.2', randomBytes(30)));
  // Deliver everything, each datagram arriving from a UDP address (as a direct path would), not the path object.
  const lanA = endpointOf('203.0.113.1', 41641);
  const lanB = endpointOf('203.0.113.2', 41641);
  for (let i = 0; i < sent.length && i < 50; i++) {
    const d = sent[i];
    assert.equal(d.to, d.from === 'a' ? toB : toA, 'sent to the path object, not to an address');
    receiveDatagram(d.from === 'a' ? b : a, d.msg, d.from === 'a' ? lanA : lanB);
  }
  assert.equal(got.b.length, 1, 'the packet arrived');
  const peerAtB = [...b.peers.values()][0];
  assert.equal(peerAtB.endpoint, toA, 'the endpoint is still the path: a datagram from an address did not move it');
  sendPacket(b, ipv4Packet('100.64.0.2', '100.64.0.1', randomBytes(30)));
  const last = sent[sent.length - 1];
  assert.equal(last.to, toA);
  receiveDatagram(a, last.msg, toB); // as magicsock hands over a datagram that came through DERP: from = the path
  assert.equal(got.a.length, 1);
});

test('under load, a handshake that came by a path gets its cookie reply on that path, bound to its MAC source', () => {
  const { a, b, toB, sent } = pathPair(0);
  sendPacket(a, ipv4Packet('100.64.0.1', '100.64.0.2', randomBytes(10)));
  const initiation = sent.shift();
  assert.ok(initiation && initiation.msg[0] === 1);
  const viaPath = new TestPath('a');
  receiveDatagram(b, initiation.msg, viaPath);
  assert.equal(b.drops.cookieSent, 1);
  const reply = sent.shift();
  assert.ok(reply && reply.msg[0] === 3, 'a cookie reply');
  assert.equal(reply.to, viaPath, 'sent back to where the initiation came from');
  receiveDatagram(a, reply.msg, toB);
  assert.equal(a.drops.badHandshake, 0, 'the cookie reply was accepted');
});

test('Endpoint: mapped and MAC-source forms, text forms, equality', () => {
  const v4 = endpointOf('192.0.2.7', 51820);
  assert.deepEqual([...v4.mapped], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7]);
  assert.deepEqual([...v4.macSource], [192, 0, 2, 7, 0xca, 0x6c]);
  assert.equal(v4.describe(), '192.0.2.7:51820');
  assert.equal(v4.rateKey, '192.0.2.7');
  const v6 = parseEndpoint('[2001:db8::1]:443');
  assert.equal(v6.family, 6);
  assert.equal(v6.macSource.length, 18);
  assert.equal(v6.describe(), '[2001:db8::1]:443');
  assert.ok(v6 instanceof Endpoint);
  assert.ok(sameEndpoint(v4, endpointOf('192.0.2.7', 51820)));
  assert.ok(!sameEndpoint(v4, endpointOf('192.0.2.7', 51821)));
  const path = new TestPath('x');
  assert.ok(sameEndpoint(path, path));
  assert.ok(!sameEndpoint(path, new TestPath('x')), 'a path is the same only as itself');
  assert.ok(!sameEndpoint(undefined, v4));
  assert.throws(() => endpointOf('not-an-ip', 1), { name: 'EndpointError' });
  assert.throws(() => endpointOf('192.0.2.1', 0), { name: 'EndpointError' });
  assert.throws(() => parseEndpoint('192.0.2.1'), { name: 'EndpointError' });
});

test("magicsock's PeerPath names its peer by node key and describes the path it would use", () => {
  const nodeKey = randomBytes(32);
  const p = new PeerPath({ nodeKey, discoKey: undefined, endpoints: [], homeDERP: 0 });
  assert.deepEqual(p.macSource, nodeKey);
  assert.equal(p.rateKey, Buffer.from(nodeKey).toString('base64'));
  assert.equal(p.describe(), 'no path yet');
  p.lastDerpRegion = 3;
  assert.equal(p.describe(), 'DERP region 3');
  p.info = { ...p.info, homeDERP: 9 };
  assert.equal(p.describe(), 'DERP region 9');
  p.best = endpointOf('198.51.100.4', 41641);
  p.bestUntil = performance.now() + 10_000;
  assert.equal(p.describe(), '198.51.100.4:41641');
  p.bestUntil = 0;
  assert.equal(p.describe(), 'DERP region 9', 'a direct path no longer trusted is not the path');
});
