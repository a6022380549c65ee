// Two Devices wired back to back in memory (no sockets): the protocol state machine on its own —
// handshakes, data, rekey, the initiation race, cookies under load, replay, AllowedIPs, hostile input.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { parsePrefix } from '../../main/engine/packet/ip.ts';
import { generateKeyPair } from '../../main/engine/wg/crypto.ts';
import { Device, type DeviceEvent } from '../../main/engine/wg/device.ts';
import { type Endpoint, endpointOf } from '../../main/engine/wg/endpoint.ts';
import { receiveDatagram } from '../../main/engine/wg/receive.ts';
import { sendPacket } from '../../main/engine/wg/send.ts';
import { tickTimers } from '../../main/engine/wg/timers.ts';
import { ipv4Packet } from './ip-packet.ts';

interface Side {
  dev: Device;
  ep: Endpoint;
  received: Uint8Array[];
  wire: Uint8Array[]; // every datagram this side sent
  events: DeviceEvent[];
}

/** Wires two devices; datagrams are delivered by pump(), optionally through a tamper hook. */
function pair(opts: { psk?: boolean; timers?: Record<string, number>; underLoadRateB?: number } = {}) {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const queue: Array<{ to: Side; msg: Uint8Array; from: Endpoint }> = [];
  const mk = (priv: Uint8Array, addr: string, underLoadRate?: number): Side => {
    const s: Side = {
      dev: undefined as unknown as Device,
      ep: endpointOf(addr, 51820),
      received: [],
      wire: [],
      events: [],
    };
    s.dev = new Device({
      privateKey: priv,
      mtu: 1420,
      timers: opts.timers,
      underLoadRate,
      onEvent: (e) => s.events.push(e),
    });
    return s;
  };
  const a = mk(ka.privateKey, '192.0.2.1');
  const b = mk(kb.privateKey, '192.0.2.2', opts.underLoadRateB);
  const psk = opts.psk ? randomBytes(32) : undefined;
  a.dev.setPeer({
    publicKey: kb.publicKey,
    presharedKey: psk,
    endpoint: b.ep,
    allowedIPs: [parsePrefix('198.51.100.2/32')],
  });
  b.dev.setPeer({
    publicKey: ka.publicKey,
    presharedKey: psk,
    endpoint: a.ep,
    allowedIPs: [parsePrefix('198.51.100.1/32')],
  });
  for (const [self, other] of [
    [a, b],
    [b, a],
  ] as const) {
    self.dev.attach({
      sendDatagram: (msg, to) => {
        assert.equal(to.describe(), other.ep.describe());
        self.wire.push(new Uint8Array(msg));
        queue.push({ to: other, msg: new Uint8Array(msg), from: self.ep });
      },
      writePacket: (p) => self.received.push(new Uint8Array(p)),
      flush: () => {},
    });
  }
  const pump = (tamper?: (m: Uint8Array) => Uint8Array | undefined): number => {
    let n = 0;
    for (let guard = 0; queue.length > 0 && guard < 10_000; guard++) {
      const { to, msg, from } = queue.shift()!;
      const m = tamper ? tamper(msg) : msg;
      if (m) receiveDatagram(to.dev, m, from);
      n++;
    }
    return n;
  };
  const peerOf = (s: Side) => [...s.dev.peers.values()][0];
  return { a, b, pump, queue, peerOf };
}

const A_IP = '198.51.100.1';
const B_IP = '198.51.100.2';

test('handshake on first packet, data both ways, keepalive confirms the responder', () => {
  for (const psk of [false, true]) {
    const { a, b, pump, peerOf } = pair({ psk });
    const payload = randomBytes(100);
    sendPacket(a.dev, ipv4Packet(A_IP, B_IP, payload));
    pump();
    assert.equal(b.received.length, 1, `packet delivered (psk=${psk})`);
    assert.deepEqual(b.received[0].subarray(20), new Uint8Array(payload));
    assert.ok(peerOf(b).current, 'responder confirmed its session');
    assert.ok(a.events.some((e) => e.kind === 'handshake' && e.role === 'initiator'));
    sendPacket(b.dev, ipv4Packet(B_IP, A_IP, payload));
    pump();
    assert.equal(a.received.length, 1);
  }
});

test('an IO that releases messages on flush gets them from the send ring, flushed before a slot is reused', () => {
  const { a, b, pump } = pair();
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  assert.equal(b.received.length, 1);
  // Messages are kept by reference until flush(), as the batch UDP socket does.
  const held: Uint8Array[] = [];
  let flushes = 0;
  a.dev.attach({
    releasesOnFlush: true,
    sendDatagram: (msg) => held.push(msg),
    writePacket: () => {},
    flush: () => {
      flushes++;
      for (const m of held) receiveDatagram(b.dev, m, a.ep);
      held.length = 0;
    },
  });
  const payloads = Array.from({ length: 300 }, (_, i) => randomBytes(i === 7 ? 1500 : (i * 37) % 1400));
  for (const p of payloads) sendPacket(a.dev, ipv4Packet(A_IP, B_IP, p));
  a.dev.io?.flush();
  assert.ok(flushes >= 3, 'the device flushed before reusing a slot');
  assert.equal(b.dev.drops.authFailed, 0);
  assert.equal(b.received.length, 1 + payloads.length);
  for (const [i, p] of payloads.entries()) {
    assert.deepEqual(b.received[1 + i].subarray(20), new Uint8Array(p), `packet ${i}`);
  }
});

test('mismatched pre-shared keys never complete a handshake', () => {
  const { a, b, pump, peerOf } = pair({ psk: true });
  peerOf(b).presharedKey = randomBytes(32);
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  assert.equal(b.received.length, 0);
  assert.equal(peerOf(a).current, undefined);
  assert.equal(a.dev.drops.badHandshake, 1);
});

test('replayed data, foreign inner source, and hostile datagrams are dropped and counted', () => {
  const { a, b, pump } = pair();
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(50)));
  pump();
  const dataMsg = a.wire[a.wire.length - 1];
  assert.equal(b.received.length, 1);
  receiveDatagram(b.dev, dataMsg, a.ep);
  assert.equal(b.dev.drops.replay, 1);
  assert.equal(b.received.length, 1);

  // A peer may only send from its AllowedIPs: B's rule for A is 198.51.100.1/32.
  a.dev.routes.insert(parsePrefix('203.0.113.0/24'), [...a.dev.peers.values()][0]);
  sendPacket(a.dev, ipv4Packet('203.0.113.9', B_IP, randomBytes(20)));
  pump();
  assert.equal(b.dev.drops.notAllowedSource, 1);
  assert.equal(b.received.length, 1);

  const before = { ...b.dev.drops };
  for (let i = 0; i < 2000; i++) receiveDatagram(b.dev, randomBytes(i % 200), a.ep);
  for (const size of [3, 31, 147, 149, 91, 63]) {
    const m = randomBytes(size);
    m[0] = size < 100 ? 4 : 1;
    m[1] = m[2] = m[3] = 0;
    receiveDatagram(b.dev, m, a.ep);
  }
  const init = new Uint8Array(148);
  init[0] = 1;
  receiveDatagram(b.dev, init, a.ep); // right size, wrong MAC1
  const counted =
    Object.values(b.dev.drops).reduce((x, y) => x + y, 0) - Object.values(before).reduce((x, y) => x + y, 0);
  assert.equal(counted, 2000 + 6 + 1, 'every hostile datagram is counted as a drop');
  assert.ok(b.dev.drops.badMac1 >= 1);
  // The session still works afterwards.
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(20)));
  pump();
  assert.equal(b.received.length, 2);
});

test('simultaneous initiation converges to one working session', () => {
  const { a, b, pump, peerOf, queue } = pair({ timers: { rekeyTimeout: 50, rekeyTimeoutJitterMax: 30 } });
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  sendPacket(b.dev, ipv4Packet(B_IP, A_IP, randomBytes(10)));
  assert.equal(queue.length, 2, 'both initiations in flight');
  pump();
  // Both responded to the other and dropped the crossing responses; retransmission resolves it.
  const deadline = Date.now() + 3000;
  // Each side's retransmission timer has its own jitter, so one initiation soon lands alone and wins.
  while ((a.received.length === 0 || b.received.length === 0) && Date.now() < deadline) {
    const until = performance.now() + 2;
    while (performance.now() < until) {}
    tickTimers(a.dev);
    pump();
    tickTimers(b.dev);
    pump();
  }
  assert.equal(a.received.length, 1);
  assert.equal(b.received.length, 1);
  assert.ok(peerOf(a).current && peerOf(b).current);
});

test('rekey after REKEY_AFTER_TIME keeps traffic flowing and rotates keypairs', () => {
  const { a, b, pump, peerOf } = pair({ timers: { rekeyAfterTime: 100, rekeyTimeout: 20, rekeyTimeoutJitterMax: 1 } });
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  const first = peerOf(a).current;
  const until = performance.now() + 130;
  while (performance.now() < until) {}
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10))); // sent on the old key, then triggers a rekey
  pump();
  assert.notEqual(peerOf(a).current, first, 'a new keypair is current');
  assert.equal(peerOf(a).previous, first, 'the old one is kept to receive stragglers');
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  sendPacket(b.dev, ipv4Packet(B_IP, A_IP, randomBytes(10)));
  pump();
  assert.equal(b.received.length, 3);
  assert.equal(a.received.length, 1);
});

test('under load, an initiation without MAC2 gets a cookie reply; the retry with MAC2 succeeds', () => {
  const { a, b, pump, peerOf } = pair({ underLoadRateB: 0, timers: { rekeyTimeout: 20, rekeyTimeoutJitterMax: 1 } });
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  assert.equal(b.dev.drops.cookieSent, 1, 'B answered with a cookie');
  assert.equal(b.received.length, 0);
  const until = performance.now() + 30;
  while (performance.now() < until) {}
  tickTimers(a.dev); // retransmission carries MAC2
  pump();
  assert.equal(b.dev.drops.cookieSent, 1, 'no second cookie');
  assert.equal(b.received.length, 1);
  assert.ok(peerOf(b).current);
});

test('the endpoint follows the latest authenticated packet (roaming)', () => {
  const { a, b, pump, peerOf } = pair();
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  const kp = peerOf(a).current!;
  const moved = endpointOf('203.0.113.77', 40000);
  receiveDatagram(b.dev, kp.seal(ipv4Packet(A_IP, B_IP, randomBytes(5)), 1420), moved);
  assert.deepEqual(peerOf(b).endpoint, moved);
  // Garbage from yet another address does not move it.
  receiveDatagram(b.dev, randomBytes(80), endpointOf('203.0.113.78', 1));
  assert.deepEqual(peerOf(b).endpoint, moved);
  assert.ok(b.events.some((e) => e.kind === 'roamed'));
});

test('a replayed initiation is refused (TAI64N)', () => {
  const { a, b, pump } = pair();
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  const initiation = new Uint8Array(a.wire[0]);
  pump();
  receiveDatagram(b.dev, initiation, a.ep);
  assert.equal(b.dev.drops.replayedInitiation, 1);
});

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

test('passive keepalive: a receiver with nothing to say answers data with a keepalive after KEEPALIVE_TIMEOUT', () => {
  const { a, b, pump } = pair({ timers: { keepaliveTimeout: 40 } });
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  const sentByB = b.wire.length;
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  tickTimers(b.dev);
  assert.equal(b.wire.length, sentByB, 'not before the timeout');
  spin(50);
  tickTimers(b.dev);
  assert.equal(b.wire.length, sentByB + 1, 'one keepalive');
  assert.equal(b.wire[b.wire.length - 1].length, 32, 'an empty transport message');
});

test('persistent keepalive is sent after the configured silence, without any data', () => {
  const { a, pump, peerOf } = pair();
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  peerOf(a).persistentKeepaliveMs = 30;
  const before = a.wire.length;
  spin(40);
  tickTimers(a.dev);
  assert.equal(a.wire.length, before + 1);
  assert.equal(a.wire[a.wire.length - 1].length, 32);
});

test('an unanswered handshake is retried every REKEY_TIMEOUT and given up after REKEY_ATTEMPT_TIME', () => {
  const { a, queue, peerOf } = pair({ timers: { rekeyTimeout: 10, rekeyTimeoutJitterMax: 1, rekeyAttemptTime: 50 } });
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  queue.length = 0; // B never hears anything
  for (let i = 0; i < 40 && !a.events.some((e) => e.kind === 'handshakeGiveUp'); i++) {
    spin(12);
    tickTimers(a.dev);
    queue.length = 0;
  }
  const initiations = a.wire.filter((m) => m[0] === 1).length;
  assert.equal(initiations, 1 + 5, 'first initiation plus rekeyAttemptTime / rekeyTimeout retries');
  assert.ok(a.events.some((e) => e.kind === 'handshakeGiveUp'));
  assert.equal(peerOf(a).staged.length, 0, 'queued packets dropped on give-up');
  assert.ok(peerOf(a).zeroKeysAt !== undefined, 'key material will be zeroed');
});

test('a keypair past REJECT_AFTER_TIME is neither used to send nor accepted', () => {
  const { a, b, pump, peerOf } = pair({
    timers: { rejectAfterTime: 60, rekeyAfterTime: 1000, rekeyTimeout: 10, rekeyTimeoutJitterMax: 1 },
  });
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  pump();
  const old = peerOf(a).current!;
  const stale = old.seal(ipv4Packet(A_IP, B_IP, randomBytes(10)), 1420);
  spin(70);
  receiveDatagram(b.dev, stale, a.ep);
  assert.equal(b.dev.drops.expiredKeypair, 1);
  sendPacket(a.dev, ipv4Packet(A_IP, B_IP, randomBytes(10)));
  assert.equal(a.wire[a.wire.length - 1][0], 1, 'a fresh handshake instead of the expired key');
  pump();
  assert.notEqual(peerOf(a).current, old);
  assert.equal(b.received.length, 2);
});
