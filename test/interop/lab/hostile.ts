// An attacker for the hostile-input test, run inside a lab namespace:
//   node --import tsx hostile.ts udp '<json>'   datagrams at a node's magicsock port
//   node --import tsx hostile.ts derp '<json>'  packets through a DERP server, as a registered node
// It sends exactly the counts it is given and prints one JSON line with what it sent.
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { DerpClient } from '../../../main/engine/derp/client.ts';
import { DISCO_MAGIC } from '../../../main/engine/disco/message.ts';
import { STUN_MAGIC_COOKIE } from '../../../main/engine/stun/stun.ts';

export interface UdpAttack {
  host: string;
  port: number;
  /** Disco envelopes: a known sender key with a box that does not open, and random unknown sender keys. */
  knownDiscoKeyHex: string;
  badBoxes: number;
  unknownKeys: number;
  /** STUN Binding Success responses to transactions never sent, mapping us to `poison`. */
  forgedStun: number;
  poison: { ip: string; port: number };
  /** Random datagrams that look like WireGuard (type 1–4 first byte) or like nothing. */
  junk: number;
}

export interface DerpAttack {
  /** http://host:port/derp of the DERP server. */
  url: string;
  /** The registered node's private key (hex) we speak as. */
  nodePrivateHex: string;
  /** The victim's node public key (hex). */
  victimHex: string;
  knownDiscoKeyHex: string;
  badBoxes: number;
  unknownKeys: number;
  junk: number;
}

/** A disco envelope from `sender` whose "box" is random bytes. */
function fakeDisco(sender: Uint8Array): Uint8Array {
  return Buffer.concat([DISCO_MAGIC, sender, randomBytes(24), randomBytes(16 + 40)]);
}

/** Random bytes whose first byte is a WireGuard message type (1–4) half the time. */
function junkDatagram(i: number): Uint8Array {
  const b = randomBytes(1 + ((i * 37) % 300));
  if (i % 2 === 0) b[0] = 1 + (i % 4);
  return b;
}

/** STUN Binding Success (RFC 5389) for a random transaction, XOR-MAPPED-ADDRESS = poison. */
function forgedStunResponse(poison: { ip: string; port: number }): Uint8Array {
  const b = Buffer.alloc(20 + 12);
  b.writeUInt16BE(0x0101, 0);
  b.writeUInt16BE(12, 2);
  b.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  randomBytes(12).copy(b, 8);
  b.writeUInt16BE(0x0020, 20);
  b.writeUInt16BE(8, 22);
  b.writeUInt8(1, 25); // IPv4
  b.writeUInt16BE(poison.port ^ (STUN_MAGIC_COOKIE >>> 16), 26);
  const ip = poison.ip.split('.').reduce((n, o) => (n << 8) | Number(o), 0) >>> 0;
  b.writeUInt32BE((ip ^ STUN_MAGIC_COOKIE) >>> 0, 28);
  return b;
}

async function udp(a: UdpAttack): Promise<Record<string, number>> {
  const sock = createSocket('udp4');
  const send = (msg: Uint8Array) =>
    new Promise<void>((resolve, reject) => sock.send(msg, a.port, a.host, (e) => (e ? reject(e) : resolve())));
  const known = Buffer.from(a.knownDiscoKeyHex, 'hex');
  for (let i = 0; i < a.badBoxes; i++) await send(fakeDisco(known));
  for (let i = 0; i < a.unknownKeys; i++) await send(fakeDisco(randomBytes(32)));
  for (let i = 0; i < a.forgedStun; i++) await send(forgedStunResponse(a.poison));
  for (let i = 0; i < a.junk; i++) await send(junkDatagram(i));
  sock.close();
  return { badBoxes: a.badBoxes, unknownKeys: a.unknownKeys, forgedStun: a.forgedStun, junk: a.junk };
}

async function derp(a: DerpAttack): Promise<Record<string, number>> {
  const client = await DerpClient.connect({
    url: a.url,
    privateKey: Buffer.from(a.nodePrivateHex, 'hex'),
    timeoutMs: 10_000,
  });
  client.onPacket(() => {});
  const victim = Buffer.from(a.victimHex, 'hex');
  const known = Buffer.from(a.knownDiscoKeyHex, 'hex');
  const packets: Uint8Array[] = [];
  for (let i = 0; i < a.badBoxes; i++) packets.push(fakeDisco(known));
  for (let i = 0; i < a.unknownKeys; i++) packets.push(fakeDisco(randomBytes(32)));
  for (let i = 0; i < a.junk; i++) packets.push(junkDatagram(i));
  // paced under the server's per-client queue, so the count that arrives is the count sent
  for (const [i, p] of packets.entries()) {
    client.send(victim, p);
    if (i % 8 === 7) await new Promise((r) => setTimeout(r, 20));
  }
  await client.ping(5_000); // the server has read everything we sent
  await new Promise((r) => setTimeout(r, 300));
  client.close();
  return { badBoxes: a.badBoxes, unknownKeys: a.unknownKeys, junk: a.junk, dropped: client.droppedSends };
}

if (process.argv[1]?.endsWith('hostile.ts')) {
  const [mode, json] = process.argv.slice(2);
  const run = mode === 'udp' ? udp(JSON.parse(json ?? '{}')) : mode === 'derp' ? derp(JSON.parse(json ?? '{}')) : null;
  if (!run) {
    console.error('usage: hostile.ts udp|derp <json>');
    process.exit(2);
  }
  run.then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(1);
    },
  );
}
