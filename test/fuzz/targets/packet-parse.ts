// IP/TCP/UDP/ICMP headers of every packet from the TUN and from peers: parsePacket never throws and never
// describes bytes outside the buffer.
import { PacketInfo, parsePacket } from '../../../main/engine/packet/parse.ts';
import { check } from '../contract.ts';

const info = new PacketInfo();

export function fuzz(data: Buffer): void {
  const p = parsePacket(data, info);
  if (p.status !== 'ok') return;
  check(p.length <= data.length, 'IP length past the buffer');
  check(p.transportOffset + p.transportLength <= data.length, 'transport range past the buffer');
  check(p.version === 4 || p.version === 6, 'ok without a version');
}
