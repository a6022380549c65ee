// The userspace TCP coalescer: which segments it joins, and the exact bytes of the super-packet it writes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { parseAddress } from '../../main/engine/packet/ip.ts';
import { TcpCoalescer, VNET_HDR_LEN } from '../../main/engine/tun/tcp-coalesce.ts';

const ACK = 0x10;
const PSH = 0x08;
const SYN = 0x02;

interface Seg {
  src?: string;
  dst?: string;
  sport?: number;
  seq: number;
  flags?: number;
  payload: Uint8Array;
  options?: Uint8Array;
}

function tcp(s: Seg): Uint8Array {
  const src = parseAddress(s.src ?? '203.0.113.1');
  const dst = parseAddress(s.dst ?? '203.0.113.2');
  const v6 = src.length === 16;
  const ipLen = v6 ? 40 : 20;
  const opts = s.options ?? new Uint8Array(0);
  const tcpLen = 20 + opts.length;
  const p = new Uint8Array(ipLen + tcpLen + s.payload.length);
  if (v6) {
    p[0] = 0x60;
    p[4] = (tcpLen + s.payload.length) >> 8;
    p[5] = (tcpLen + s.payload.length) & 0xff;
    p[6] = 6;
    p[7] = 64;
    p.set(src, 8);
    p.set(dst, 24);
  } else {
    p[0] = 0x45;
    p[2] = p.length >> 8;
    p[3] = p.length & 0xff;
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p.set(src, 12);
    p.set(dst, 16);
  }
  const t = ipLen;
  const v = new DataView(p.buffer);
  v.setUint16(t, s.sport ?? 40000);
  v.setUint16(t + 2, 5201);
  v.setUint32(t + 4, s.seq >>> 0);
  v.setUint32(t + 8, 777);
  p[t + 12] = (tcpLen / 4) << 4;
  p[t + 13] = s.flags ?? ACK;
  v.setUint16(t + 14, 1000);
  p.set(opts, t + 20);
  p.set(s.payload, t + tcpLen);
  return p;
}

function collect(): { c: TcpCoalescer; out: Uint8Array[] } {
  const out: Uint8Array[] = [];
  const c = new TcpCoalescer((pkts, n) => {
    for (let i = 0; i < n; i++) out.push(new Uint8Array(pkts[i]));
  });
  return { c, out };
}

function csum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

test('in-order full segments and a short PSH tail become one GSO super-packet (IPv4)', () => {
  const { c, out } = collect();
  const mss = 1200;
  const payloads = [0, 1, 2, 3, 4].map(() => randomBytes(mss));
  payloads.push(randomBytes(300));
  let seq = 0xfffff000; // wraps past 2^32 on the way
  payloads.forEach((pl, i) => {
    c.push(tcp({ seq, payload: pl, flags: i === payloads.length - 1 ? ACK | PSH : ACK }));
    seq = (seq + pl.length) >>> 0;
  });
  c.flush();
  assert.equal(out.length, 1);
  const pkt = out[0];
  const h = new DataView(pkt.buffer, 0, VNET_HDR_LEN);
  assert.equal(h.getUint8(0), 1, 'NEEDS_CSUM');
  assert.equal(h.getUint8(1), 1, 'GSO TCPv4');
  assert.equal(h.getUint16(2, true), 40, 'hdr_len');
  assert.equal(h.getUint16(4, true), mss, 'gso_size');
  assert.equal(h.getUint16(6, true), 20, 'csum_start');
  assert.equal(h.getUint16(8, true), 16, 'csum_offset');
  const ip = pkt.subarray(VNET_HDR_LEN);
  assert.equal((ip[2] << 8) | ip[3], ip.length, 'IPv4 total length');
  assert.equal(csum(ip.subarray(0, 20)), 0xffff, 'IPv4 header checksum valid');
  assert.equal(ip[33], ACK | PSH, 'PSH carried over from the tail');
  assert.deepEqual(ip.subarray(40), new Uint8Array(Buffer.concat(payloads)));
  // The TCP checksum field holds the folded pseudo-header sum, which the kernel completes.
  const pseudo = new Uint8Array(12);
  pseudo.set(ip.subarray(12, 20));
  pseudo[9] = 6;
  pseudo[10] = (ip.length - 20) >> 8;
  pseudo[11] = (ip.length - 20) & 0xff;
  assert.equal((ip[36] << 8) | ip[37], csum(pseudo));
  assert.equal(c.segmentsCoalesced, 6);
});

test('IPv6 segments coalesce with GSO TCPv6 and the payload length fixed', () => {
  const { c, out } = collect();
  const a = { src: '2001:db8:100::1', dst: '2001:db8:100::2' };
  c.push(tcp({ ...a, seq: 1, payload: randomBytes(1000) }));
  c.push(tcp({ ...a, seq: 1001, payload: randomBytes(1000) }));
  c.flush();
  assert.equal(out.length, 1);
  assert.equal(out[0][1], 4);
  const ip = out[0].subarray(VNET_HDR_LEN);
  assert.equal((ip[4] << 8) | ip[5], ip.length - 40);
});

test('gaps, other flows, other options, SYN, non-TCP and oversize stay apart', () => {
  const { c, out } = collect();
  const pl = () => randomBytes(1000);
  c.push(tcp({ seq: 0, payload: pl() }));
  c.push(tcp({ seq: 2000, payload: pl() })); // gap
  c.push(tcp({ seq: 3000, payload: pl(), sport: 40001 })); // other flow
  c.push(tcp({ seq: 4000, payload: pl(), options: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2) }));
  c.push(tcp({ seq: 5000, payload: pl(), options: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2) }));
  c.push(tcp({ seq: 6000, payload: new Uint8Array(0), flags: SYN }));
  const udp = new Uint8Array(28);
  udp[0] = 0x45;
  udp[3] = 28;
  udp[9] = 17;
  c.push(udp);
  c.flush();
  assert.equal(out.length, 7, 'nothing coalesced');
  for (const p of out) assert.deepEqual(p.subarray(0, VNET_HDR_LEN), new Uint8Array(VNET_HDR_LEN), 'plain header');
  assert.deepEqual(out[6].subarray(VNET_HDR_LEN), udp);

  const big = collect();
  let seq = 0;
  for (let i = 0; i < 60; i++) {
    big.c.push(tcp({ seq, payload: randomBytes(1400) }));
    seq += 1400;
  }
  big.c.flush();
  assert.ok(big.out.length >= 2, 'no super-packet beyond 64 KiB');
  for (const p of big.out) assert.ok(p.length - VNET_HDR_LEN <= 65535);
  const total = big.out.reduce((n, p) => n + p.length - VNET_HDR_LEN - 40, 0);
  assert.equal(total, 60 * 1400, 'every byte written once');
});

test('a short segment ends a group; what follows starts a new one', () => {
  const { c, out } = collect();
  c.push(tcp({ seq: 0, payload: randomBytes(1000) }));
  c.push(tcp({ seq: 1000, payload: randomBytes(500) }));
  c.push(tcp({ seq: 1500, payload: randomBytes(1000) }));
  c.push(tcp({ seq: 2500, payload: randomBytes(1000) }));
  c.flush();
  assert.equal(out.length, 2);
  assert.equal(out[0].length, VNET_HDR_LEN + 40 + 1500);
  assert.equal(out[1].length, VNET_HDR_LEN + 40 + 2000);
});
