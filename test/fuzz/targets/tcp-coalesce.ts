// Decrypted packets from peers on their way to the TUN: the coalescer joins TCP segments and never throws. The
// input is a batch: a length byte pair before each packet.
import { TcpCoalescer, VNET_HDR_LEN } from '../../../main/engine/tun/tcp-coalesce.ts';
import { Bytes, check } from '../contract.ts';

let written = 0;
const coalescer = new TcpCoalescer((packets, count) => {
  for (let i = 0; i < count; i++)
    check(packets[i].length > VNET_HDR_LEN && packets[i].length <= 65535 + VNET_HDR_LEN, 'bad frame size');
  written += count;
});

export function fuzz(data: Buffer): void {
  const b = new Bytes(data);
  let pushed = 0;
  written = 0;
  while (b.left > 0) {
    const pkt = b.take(b.u16() % 2048);
    if (pkt.length === 0) continue;
    coalescer.push(new Uint8Array(pkt)); // takes ownership
    pushed++;
  }
  coalescer.flush();
  check(written <= pushed, 'more frames out than packets in');
}
