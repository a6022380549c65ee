// Test helpers that play a raw TCP peer against one NetStack on a ManualClock: hand-built segments in, the
// stack's packets collected, handshakes done by hand. For the hostile-input and memory tests.
import assert from 'node:assert/strict';
import { ManualClock } from '../../main/engine/netstack/clock.ts';
import { buildTcpPacket, parseTcp, seqAdd, TCP_FLAGS, type TcpOptions } from '../../main/engine/netstack/segment.ts';
import { NetStack } from '../../main/engine/netstack/stack.ts';
import type { TcpSocket } from '../../main/engine/netstack/tcp-socket.ts';
import { parseAddress } from '../../main/engine/packet/ip.ts';
import { prng } from './netstack-link.ts';

const { SYN, ACK } = TCP_FLAGS;
export const ME = parseAddress('100.64.0.1');
export const PEER = parseAddress('100.64.0.9');

export interface RawOptions {
  maxConnections?: number;
  maxHalfOpen?: number;
  rcvBuf?: number;
  /** 'default': the stack's own default (DEFAULT_TCP_CONFIG). */
  sndBuf?: number | 'default';
  maxReassembly?: number;
  maxBuffered?: number;
}

/** A stack at 100.64.0.1 listening on port 80; accepted sockets are collected (and their errors swallowed). */
export function setup(opts: RawOptions = {}) {
  const clock = new ManualClock();
  const out: Uint8Array[] = [];
  const rand = prng(99);
  const stack = new NetStack({
    addresses: ['100.64.0.1'],
    clock,
    output: (p) => out.push(p),
    random32: () => Math.floor(rand() * 2 ** 32) >>> 0,
    maxConnections: opts.maxConnections,
    maxHalfOpen: opts.maxHalfOpen,
    maxReassemblyBytes: opts.maxReassembly,
    maxBufferedBytes: opts.maxBuffered,
    tcp: {
      rcvBuf: opts.rcvBuf ?? 64 * 1024,
      ...(opts.sndBuf === 'default' ? {} : { sndBuf: opts.sndBuf ?? 64 * 1024 }),
    },
  });
  const accepted: TcpSocket[] = [];
  stack.listen(80, (s) => {
    accepted.push(s);
    s.on('error', () => {});
  });
  return { clock, out, stack, accepted };
}

export type RawEnv = ReturnType<typeof setup>;

/** A segment from the raw peer (default 100.64.0.9:5555) to port 80. */
export function seg(
  flags: number,
  seq: number,
  ack: number,
  o: { payload?: Uint8Array; window?: number; options?: TcpOptions; sport?: number; src?: Uint8Array } = {},
) {
  return buildTcpPacket({
    src: o.src ?? PEER,
    dst: ME,
    srcPort: o.sport ?? 5555,
    dstPort: 80,
    seq,
    ack,
    flags,
    window: o.window ?? 65535,
    options: o.options,
    payload: o.payload,
  });
}

/** The stack's last packet as a TCP segment (IPv4). */
export function lastTcp(out: Uint8Array[]) {
  const p = out[out.length - 1];
  const s = parseTcp(p.subarray(20), p.subarray(12, 16), p.subarray(16, 20));
  assert.ok(typeof s !== 'string', 'the stack sent a valid segment');
  return s;
}

/** A raw peer completes a handshake from `sport`; returns the sequence numbers to continue with and the socket. */
export function handshake(env: RawEnv, options: TcpOptions = { mss: 1200, wscale: 7 }, sport = 5555) {
  const before = env.accepted.length;
  env.stack.deliver(seg(SYN, 1000, 0, { options, sport }));
  const synAck = lastTcp(env.out);
  assert.equal(synAck.flags, SYN | ACK);
  env.stack.deliver(seg(ACK, 1001, seqAdd(synAck.seq, 1), { sport }));
  assert.equal(env.accepted.length, before + 1, 'the connection was accepted');
  return { peerSeq: 1001, mySeq: seqAdd(synAck.seq, 1), sock: env.accepted[before], shift: synAck.options.wscale ?? 0 };
}
