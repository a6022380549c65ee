// The WireGuard data path's own cost per packet, in memory: device A seals TUN-MTU packets (sendPacket), the
// datagrams are copied into a recvmmsg-like slot buffer (the kernel's copy) and dispatched to device B as the
// batch UDP socket does, which opens them and hands them to writePacket. Prints CPU µs per packet (seal + open)
// and the JS heap and ArrayBuffer bytes allocated per packet (rough: for where they come from, sample with the
// inspector's HeapProfiler, or count scavenges with --trace-gc). HOTPATH_RING=0 turns the send ring off,
// HOTPATH_VIEWS=0 the receive slots' views. Run: node --expose-gc --max-semi-space-size=256
// --import tsx test/bench/hotpath.ts [packets] [payload bytes]
import { parsePrefix } from '../../main/engine/packet/ip.ts';
import { generateKeyPair } from '../../main/engine/wg/crypto.ts';
import { Device } from '../../main/engine/wg/device.ts';
import { type Endpoint, endpointOf } from '../../main/engine/wg/endpoint.ts';
import { MessageSlot } from '../../main/engine/wg/keypair.ts';
import { receiveDatagram } from '../../main/engine/wg/receive.ts';
import { sendPacket } from '../../main/engine/wg/send.ts';

const SLOT = 4096;
const BATCH = 64;
const packets = Number(process.argv[2] ?? 200000);
const size = Number(process.argv[3] ?? 1280);
const gc = (globalThis as { gc?: () => void }).gc;

const ka = generateKeyPair();
const kb = generateKeyPair();
const epA = endpointOf('192.0.2.1', 51820);
const epB = endpointOf('192.0.2.2', 51820);
const a = new Device({ privateKey: ka.privateKey, mtu: 1280 });
const b = new Device({ privateKey: kb.privateKey, mtu: 1280 });
a.setPeer({ publicKey: kb.publicKey, endpoint: epB, allowedIPs: [parsePrefix('198.51.100.2/32')] });
b.setPeer({ publicKey: ka.publicKey, endpoint: epA, allowedIPs: [parsePrefix('198.51.100.1/32')] });

// The receive side's slot buffer as recvmmsg fills it; views made as batch-udp makes them.
const recvBuf = Buffer.alloc(SLOT * BATCH);
const lengths = new Uint32Array(BATCH);
let count = 0;
let delivered = 0;
// As batch-udp.ts does: a MessageSlot per receive slot, so each datagram comes with its ready-made views
// (HOTPATH_VIEWS=0: a fresh view per datagram, as before).
const useViews = process.env.HOTPATH_VIEWS !== '0';
const slots = Array.from({ length: BATCH }, (_, i) => new MessageSlot(SLOT - 32, recvBuf, i * SLOT));
function deliver(to: Device, from: Endpoint): void {
  for (let i = 0; i < count; i++) {
    if (useViews) {
      const v = slots[i].viewsFor(lengths[i] - 32);
      receiveDatagram(to, v.msg, from, v);
    } else receiveDatagram(to, recvBuf.subarray(i * SLOT, i * SLOT + lengths[i]), from);
  }
  count = 0;
}
const wire = (_self: Device, other: Device, selfEp: Endpoint) => ({
  releasesOnFlush: process.env.HOTPATH_RING !== '0',
  sendDatagram: (msg: Uint8Array) => {
    if (count === BATCH) deliver(other, selfEp);
    recvBuf.set(msg, count * SLOT);
    lengths[count++] = msg.length;
  },
  writePacket: () => {
    delivered++;
  },
  flush: () => deliver(other, selfEp),
});
a.attach(wire(a, b, epA));
b.attach(wire(b, a, epB));

const pkt = new Uint8Array(size);
pkt[0] = 0x45;
pkt[2] = size >> 8;
pkt[3] = size & 0xff;
pkt[8] = 64;
pkt[9] = 17;
pkt.set([198, 51, 100, 1], 12);
pkt.set([198, 51, 100, 2], 16);

// Handshake (A initiates on its first packet), then B's first data confirms its side.
sendPacket(a, pkt);
a.io?.flush();
b.io?.flush();
a.io?.flush();
if (delivered !== 1) throw new Error(`handshake did not deliver (${delivered})`);

function run(n: number): void {
  for (let i = 0; i < n; i++) {
    sendPacket(a, pkt);
    if ((i & 63) === 63) a.io?.flush();
  }
  a.io?.flush();
}

run(20000); // warm up
gc?.();
const m0 = process.memoryUsage();
const allocN = 20000;
run(allocN);
const m1 = process.memoryUsage();
const heapPer = (m1.heapUsed - m0.heapUsed) / allocN;
const abPer = (m1.arrayBuffers - m0.arrayBuffers) / allocN;

const c0 = process.cpuUsage();
const before = delivered;
run(packets);
const c1 = process.cpuUsage(c0);
if (delivered - before !== packets) throw new Error(`delivered ${delivered - before} of ${packets}`);
const us = (c1.user + c1.system) / packets;
console.log(
  JSON.stringify({
    packets,
    size,
    cpuUsPerPacket: +us.toFixed(3),
    heapBytesPerPacket: +heapPer.toFixed(1),
    arrayBufferBytesPerPacket: +abPer.toFixed(1),
  }),
);
