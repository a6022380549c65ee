// DNS over TCP to quad-100 (docs/protocol/services.md §3.4.1), for clients that retry over TCP after a truncated UDP answer.
// The smallest TCP that serves it inside the packet path: SYN → SYN-ACK, in-order bytes collected until one
// length-prefixed query is whole, the answer sent in segments of the client's MSS, then FIN. Segments between the
// local stack and the TUN are not lost, so there are no retransmission timers; anything unexpected gets a RST.
import { randomBytes } from 'node:crypto';
import { buildIpPacket, tcpSegment } from '../packet/build.ts';
import { formatPacketAddress, IPPROTO, type PacketInfo, TCP_FLAGS } from '../packet/parse.ts';
import { QUAD100_V4, QUAD100_V6 } from './resolver.ts';

const MAX_CONNS = 256;
const CONN_TTL_MS = 10_000;
const MAX_QUERY = 4096;

interface Conn {
  client: string;
  port: number;
  v6: boolean;
  /** Next sequence number we expect from the client, and ours. */
  rcvNext: number;
  sndNext: number;
  mss: number;
  buf: Buffer;
  answered: boolean;
  expires: number;
}

export class Quad100Tcp {
  private readonly conns = new Map<string, Conn>();

  constructor(
    /** The DNS answer for a query (wire format), or undefined to reset the connection. */
    private readonly resolve: (query: Uint8Array) => Promise<Uint8Array | undefined>,
    private readonly writeReply: (pkt: Uint8Array) => void,
  ) {}

  handle(pkt: Uint8Array, p: PacketInfo): void {
    const t = p.transportOffset;
    if (p.transportLength < 20) return;
    const v = new DataView(pkt.buffer, pkt.byteOffset + t, p.transportLength);
    const seq = v.getUint32(4);
    const flags = pkt[t + 13];
    const headerLen = (pkt[t + 12] >> 4) * 4;
    if (headerLen < 20 || headerLen > p.transportLength) return;
    const payload = pkt.subarray(t + headerLen, t + p.transportLength);
    const client = formatPacketAddress(p, 'src');
    const key = `${client}|${p.srcPort}`;
    const now = performance.now();
    for (const [k, c] of this.conns) if (c.expires < now) this.conns.delete(k);
    let c = this.conns.get(key);

    if (flags & TCP_FLAGS.RST) {
      this.conns.delete(key);
      return;
    }
    if (flags & TCP_FLAGS.SYN) {
      if (this.conns.size >= MAX_CONNS && !c) return; // a SYN flood gets silence
      const isn = randomBytes(4).readUInt32BE(0);
      c = {
        client,
        port: p.srcPort,
        v6: p.version === 6,
        rcvNext: (seq + 1) >>> 0,
        sndNext: (isn + 1) >>> 0,
        mss: synMss(pkt.subarray(t + 20, t + headerLen), p.version === 6),
        buf: Buffer.alloc(0),
        answered: false,
        expires: now + CONN_TTL_MS,
      };
      this.conns.set(key, c);
      this.send(c, TCP_FLAGS.SYN | TCP_FLAGS.ACK, new Uint8Array(0), isn);
      return;
    }
    if (!c) {
      if (!(flags & TCP_FLAGS.ACK) || payload.length > 0 || flags & TCP_FLAGS.FIN) this.reset(p, client, seq, payload);
      return;
    }
    if (payload.length > 0 || flags & TCP_FLAGS.FIN) {
      if (seq === c.rcvNext && c.buf.length + payload.length <= MAX_QUERY) {
        c.buf = Buffer.concat([c.buf, payload]);
        c.rcvNext = (c.rcvNext + payload.length + (flags & TCP_FLAGS.FIN ? 1 : 0)) >>> 0;
      }
      this.send(c, TCP_FLAGS.ACK, new Uint8Array(0));
      if (flags & TCP_FLAGS.FIN && c.answered) this.conns.delete(key);
    }
    if (!c.answered && c.buf.length >= 2 && c.buf.length >= 2 + c.buf.readUInt16BE(0)) {
      c.answered = true;
      const query = c.buf.subarray(2, 2 + c.buf.readUInt16BE(0));
      const conn = c;
      void this.resolve(query).then((answer) => {
        if (!answer) return this.closeWithReset(conn);
        const framed = Buffer.alloc(2 + answer.length);
        framed.writeUInt16BE(answer.length, 0);
        framed.set(answer, 2);
        for (let off = 0; off < framed.length; off += conn.mss) {
          const part = framed.subarray(off, off + conn.mss);
          this.send(conn, TCP_FLAGS.ACK | TCP_FLAGS.PSH, part);
          conn.sndNext = (conn.sndNext + part.length) >>> 0;
        }
        this.send(conn, TCP_FLAGS.ACK | TCP_FLAGS.FIN, new Uint8Array(0));
        conn.sndNext = (conn.sndNext + 1) >>> 0;
      });
    }
  }

  private send(c: Conn, flags: number, data: Uint8Array, seq = c.sndNext): void {
    const seg = tcpSegment(53, c.port, flags, data, seq, flags & TCP_FLAGS.ACK ? c.rcvNext : 0);
    const src = c.v6 ? QUAD100_V6 : QUAD100_V4;
    this.writeReply(buildIpPacket({ src, dst: c.client, proto: IPPROTO.TCP }, seg));
  }

  private closeWithReset(c: Conn): void {
    this.send(c, TCP_FLAGS.RST | TCP_FLAGS.ACK, new Uint8Array(0));
    this.conns.delete(`${c.client}|${c.port}`);
  }

  /** RST for a segment of no connection of ours (RFC 793: seq from its ACK, else ack its sequence space). */
  private reset(p: PacketInfo, client: string, seq: number, payload: Uint8Array): void {
    const src = p.version === 6 ? QUAD100_V6 : QUAD100_V4;
    const seg = tcpSegment(53, p.srcPort, TCP_FLAGS.RST | TCP_FLAGS.ACK, new Uint8Array(0), 0, seq + payload.length);
    this.writeReply(buildIpPacket({ src, dst: client, proto: IPPROTO.TCP }, seg));
  }
}

/** The MSS option of a SYN (kind 2), else the protocol default. */
function synMss(options: Uint8Array, v6: boolean): number {
  for (let i = 0; i < options.length; ) {
    const kind = options[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = options[i + 1] ?? 0;
    if (len < 2) break;
    if (kind === 2 && len === 4 && i + 3 < options.length) return Math.max(64, (options[i + 2] << 8) | options[i + 3]);
    i += len;
  }
  return v6 ? 1220 : 536;
}
