// TCP segments to 100.100.100.100:53 from the TUN (DNS over TCP): Quad100Tcp.handle never throws, and neither does
// the code that frames its answer. The input is a batch of IP packets (a length byte pair before each) that share
// one connection table, so handshakes, data and FINs meet the state they build.

import { Quad100Tcp } from '../../../main/engine/dns/quad100-tcp.ts';
import { answerQuery } from '../../../main/engine/dns/resolver.ts';
import { buildDnsTable } from '../../../main/engine/dns/table.ts';
import { IPPROTO, PacketInfo, parsePacket } from '../../../main/engine/packet/parse.ts';
import { Bytes, check } from '../contract.ts';

const table = buildDnsTable(
  { ID: 1, Name: 'self.tailnet.test.', Addresses: ['100.64.0.1/32'] } as never,
  [{ ID: 2, Name: 'peer.tailnet.test.', Addresses: ['100.64.0.2/32'] }] as never[],
  undefined,
);

// The resolver answers through a thenable that calls back at once: the answer path runs inside this input, not in
// a microtask after the fuzzer has moved on.
function now<T>(v: T): Promise<T> {
  // biome-ignore lint/suspicious/noThenProperty: a synchronous thenable is the point (see above)
  return { then: (cb: (v: T) => unknown) => cb(v) } as unknown as Promise<T>;
}

const tcp = new Quad100Tcp(
  (q) => {
    const o = answerQuery(q, table, 'tcp');
    return now(o.kind === 'reply' ? o.packet : q[0] === 0xff ? undefined : new Uint8Array(12));
  },
  (pkt) => {
    check(parsePacket(pkt).status === 'ok', 'quad-100 wrote a packet that does not parse');
  },
);
const info = new PacketInfo();

export function fuzz(data: Buffer): void {
  const b = new Bytes(data);
  while (b.left > 0) {
    const pkt = new Uint8Array(b.take(b.u16() % 4200));
    const p = parsePacket(pkt, info);
    // What the data path hands over: parsed TCP to quad-100 (the address check is the caller's).
    if (p.status === 'ok' && p.proto === IPPROTO.TCP && !p.fragment && p.dstPort === 53) tcp.handle(pkt, p);
  }
}
