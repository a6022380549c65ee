// WireGuard datagrams from the network: receiveDatagram demultiplexes initiations, responses, cookie replies and
// transport data and, by its contract, never throws on hostile input (everything is a counted drop). Two devices,
// A and B, share a session made at start-up; B receives. The first byte picks the mode:
//   0: the body is a raw datagram;
//   1: the body is a handshake message whose mac1 is filled in here with A's key for B, so it passes the MAC
//      check and reaches the Noise handshake code;
//   2: the body is an inner IP packet, sealed here as A's next transport message, so it reaches decryption,
//      the replay window, inner-packet checks and AllowedIPs.
import { parsePrefix } from '../../../main/engine/packet/ip.ts';
import { generateKeyPair } from '../../../main/engine/wg/crypto.ts';
import { Device } from '../../../main/engine/wg/device.ts';
import { type Endpoint, endpointOf } from '../../../main/engine/wg/endpoint.ts';
import type { Peer } from '../../../main/engine/wg/peer.ts';
import { receiveDatagram } from '../../../main/engine/wg/receive.ts';
import { sendPacket, sendTransport } from '../../../main/engine/wg/send.ts';
import { check } from '../contract.ts';

// Long timers: the shared session must outlive a run of many minutes.
const timers = { rekeyAfterTime: 1e12, rejectAfterTime: 2e12, rekeyAttemptTime: 1e12, keepaliveTimeout: 1e12 };
const ka = generateKeyPair();
const kb = generateKeyPair();
const epA = endpointOf('192.0.2.1', 51820);
const epB = endpointOf('192.0.2.2', 51820);
const a = new Device({ privateKey: ka.privateKey, mtu: 1420, timers });
const b = new Device({ privateKey: kb.privateKey, mtu: 1420, timers, underLoadRate: 1e9 });
const peerOfA: Peer = a.setPeer({ publicKey: kb.publicKey, endpoint: epB, allowedIPs: [parsePrefix('10.0.0.2/32')] });
b.setPeer({
  publicKey: ka.publicKey,
  endpoint: epA,
  allowedIPs: [parsePrefix('10.0.0.1/32'), parsePrefix('fd00::1/128')],
});

const toB: Uint8Array[] = [];
const toA: Uint8Array[] = [];
a.attach({ sendDatagram: (m) => toB.push(new Uint8Array(m)), writePacket: () => {}, flush: () => {} });
b.attach({
  sendDatagram: (m) => toA.push(new Uint8Array(m)),
  writePacket: (p) => check(p.length > 0 && p.length <= 1420, `B wrote a ${p.length}-byte packet to its TUN`),
  flush: () => {},
});

// The handshake, then one data packet so that B confirms the session.
const probe = new Uint8Array(20);
probe.set([0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
sendPacket(a, probe);
for (let guard = 0; guard < 10 && (toB.length > 0 || toA.length > 0); guard++) {
  for (const m of toB.splice(0)) receiveDatagram(b, m, epA);
  for (const m of toA.splice(0)) receiveDatagram(a, m, epB);
}
const session = peerOfA.current;
if (!session) throw new Error('wg-receive: the set-up handshake did not complete');

function deliver(msg: Uint8Array, from: Endpoint): void {
  receiveDatagram(b, msg, from);
  toA.length = 0; // B's answers (responses, cookie replies) are not fed back: A's state stays fixed
}

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const body = new Uint8Array(data.subarray(1));
  switch (data[0] % 3) {
    case 0:
      deliver(body, epA);
      return;
    case 1:
      if (body.length >= 32) peerOfA.cookies.addMacs(body);
      deliver(body, data[0] & 0x80 ? epA : endpointOf('198.51.100.7', data[0]));
      return;
    default:
      sendTransport(a, peerOfA, session!, body);
      for (const m of toB.splice(0)) deliver(m, epA);
  }
}
