// Flow identity for the stack's demux: address keys, and the connection the previous TCP segment belonged to. A
// bulk transfer sends its segments back to back, so most segments match that one and skip building the 4-tuple
// key and the map lookup (and the address copies) entirely.
import type { TcpConnection } from './tcp-conn.ts';

/** An address as a map key (dotted quad, or hex for IPv6). */
export function addressKey(b: Uint8Array): string {
  return b.length === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : Buffer.from(b).toString('hex');
}

export class LastFlow {
  conn: TcpConnection | undefined;

  /** The remembered connection if `packet` (IP header at 0, TCP at tOff, at least 4 bytes of it) is its flow. */
  match(packet: Uint8Array, tOff: number, v4: boolean): TcpConnection | undefined {
    const c = this.conn;
    if (!c || c.state === 'CLOSED') return undefined;
    const ep = c.ep;
    if ((ep.remoteAddr.length === 4) !== v4) return undefined;
    if (((packet[tOff] << 8) | packet[tOff + 1]) !== ep.remotePort) return undefined;
    if (((packet[tOff + 2] << 8) | packet[tOff + 3]) !== ep.localPort) return undefined;
    const src = v4 ? 12 : 8;
    const dst = v4 ? 16 : 24;
    for (let i = 0; i < ep.remoteAddr.length; i++) {
      if (packet[src + i] !== ep.remoteAddr[i] || packet[dst + i] !== ep.localAddr[i]) return undefined;
    }
    return c;
  }

  forget(key?: string): void {
    if (key === undefined || this.conn?.key === key) this.conn = undefined;
  }
}
