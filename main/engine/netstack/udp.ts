// UDP for the stack: sockets bound to a port, datagrams in (checksum and length checked) and out.
import { EventEmitter } from 'node:events';
import { IPPROTO } from '../packet/parse.ts';
import { fillTransportChecksum, transportChecksumOk, writeIpHeader } from './segment.ts';

export interface UdpRemote {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
  size: number;
}

/** What a UDP socket needs from the stack. */
export interface UdpHost {
  sendUdp(local: { address?: string; port: number }, address: string, port: number, data: Uint8Array): void;
  unbindUdp(port: number, socket: UdpSocket): void;
}

/** A bound UDP port: emits 'message' (data: Buffer, remote: UdpRemote); send() to any tailnet address. */
export class UdpSocket extends EventEmitter {
  private closed = false;

  constructor(
    private readonly host: UdpHost,
    readonly port: number,
    readonly address?: string,
  ) {
    super();
  }

  send(data: Uint8Array, port: number, address: string): void {
    if (this.closed) throw new Error('the UDP socket is closed');
    if (data.length > 65_507) throw new RangeError('a UDP datagram carries at most 65507 bytes');
    this.host.sendUdp({ address: this.address, port: this.port }, address, port, data);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.host.unbindUdp(this.port, this);
    this.emit('close');
  }

  /** Called by the stack for each datagram to this port. */
  receive(data: Uint8Array, remote: UdpRemote): void {
    if (!this.closed) this.emit('message', Buffer.from(data), remote);
  }
}

/** Checks a UDP datagram's length and checksum; returns its payload or a drop reason. */
export function parseUdp(
  t: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
): { srcPort: number; dstPort: number; payload: Uint8Array } | string {
  if (t.length < 8) return 'short-udp';
  const len = (t[4] << 8) | t[5];
  if (len < 8 || len > t.length) return 'bad-udp-length';
  const d = t.subarray(0, len);
  const sum = (t[6] << 8) | t[7];
  if (sum === 0 ? src.length === 16 : !transportChecksumOk(d, src, dst, IPPROTO.UDP)) return 'bad-checksum';
  return { srcPort: (t[0] << 8) | t[1], dstPort: (t[2] << 8) | t[3], payload: d.subarray(8) };
}

/** A whole IP packet carrying one UDP datagram. */
export function buildUdpPacket(
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
  data: Uint8Array,
): Uint8Array {
  const ipLen = src.length === 4 ? 20 : 40;
  const out = new Uint8Array(ipLen + 8 + data.length);
  writeIpHeader(out, src, dst, IPPROTO.UDP, 8 + data.length);
  const t = out.subarray(ipLen);
  t[0] = srcPort >> 8;
  t[1] = srcPort & 0xff;
  t[2] = dstPort >> 8;
  t[3] = dstPort & 0xff;
  t[4] = t.length >> 8;
  t[5] = t.length & 0xff;
  t.set(data, 8);
  fillTransportChecksum(t, 6, src, dst, IPPROTO.UDP);
  return out;
}
