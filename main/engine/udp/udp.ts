// UDP sockets through node:dgram, one per address family on one port: the portable transport for WireGuard
// (the tailnet's magicsock and `trellis wg`). Errors at bind time become UdpBindError with a sentence a user can act on.
import { createSocket, type Socket } from 'node:dgram';
import { type Endpoint, endpointOf } from '../wg/endpoint.ts';

export class UdpBindError extends Error {
  override readonly name = 'UdpBindError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** Turns a bind failure of either socket implementation into a UdpBindError a user can act on. */
export function bindError(e: NodeJS.ErrnoException, port: number): UdpBindError {
  const why =
    e.code === 'EADDRINUSE'
      ? `UDP port ${port} is already in use (is another WireGuard interface listening on it?)`
      : e.code === 'EACCES'
        ? `not allowed to bind UDP port ${port}`
        : `cannot bind UDP port ${port}: ${e.message}`;
  return new UdpBindError(why, e.code);
}

export type DatagramHandler = (msg: Uint8Array, from: Endpoint) => void;

function bindSocket(type: 'udp4' | 'udp6', port: number, onMessage: DatagramHandler): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type, ipv6Only: type === 'udp6', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    const fail = (e: NodeJS.ErrnoException) => {
      s.close();
      reject(bindError(e, port));
    };
    s.once('error', fail);
    s.on('message', (msg, rinfo) => {
      let from: Endpoint;
      try {
        from = endpointOf(rinfo.address, rinfo.port);
      } catch {
        return;
      }
      onMessage(msg, from);
    });
    s.bind(port, () => {
      s.off('error', fail);
      s.on('error', () => {}); // send errors (unreachable, no route) are per-datagram, not fatal
      resolve(s);
    });
  });
}

/** What the tunnel needs from a UDP implementation. */
export interface DatagramTransport {
  readonly port: number;
  send(msg: Uint8Array, to: Endpoint): void;
  /** Sends anything buffered. */
  flush(): void;
  close(): void;
}

/** node:dgram sockets: the portable fallback when the batching addon socket is unavailable. */
export class UdpTransport implements DatagramTransport {
  private constructor(
    private readonly v4: Socket,
    private readonly v6: Socket | undefined,
    readonly port: number,
  ) {}

  /** Binds IPv4 on port (0 = any) and IPv6 on the same port when the host has IPv6. */
  static async open(port: number, onMessage: DatagramHandler): Promise<UdpTransport> {
    const v4 = await bindSocket('udp4', port, onMessage);
    const actual = v4.address().port;
    let v6: Socket | undefined;
    try {
      v6 = await bindSocket('udp6', actual, onMessage);
    } catch (e) {
      if (e instanceof UdpBindError && e.code === 'EADDRINUSE') {
        v4.close();
        throw e;
      }
      v6 = undefined; // no IPv6 on this host: IPv4 only
    }
    return new UdpTransport(v4, v6, actual);
  }

  send(msg: Uint8Array, to: Endpoint): void {
    const s = to.family === 6 ? this.v6 : this.v4;
    s?.send(msg, to.port, to.address);
  }

  flush(): void {}

  close(): void {
    this.v4.close();
    this.v6?.close();
  }
}
