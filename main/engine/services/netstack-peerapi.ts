// Taildrop in userspace networking: the netstack listens on the PeerAPI's ports (on our tailnet addresses, where
// no OS socket can) and hands each connection to the PeerAPI on the engine's thread; sends dial through it too.
import type { Duplex } from 'node:stream';
import type { NetStack, TcpListener } from '../netstack/index.ts';
import type { PeerApiStream } from '../taildrop/peerapi.ts';
import { ensureIdleTimer } from '../taildrop/peerapi-intake.ts';
import type { PeerApiPorts } from '../taildrop/receive-thread.ts';

/**
 * net.Socket's idle timeout, which node's HTTP server and the PeerAPI set and a netstack socket lacks (see
 * ensureIdleTimer: it watches bytes without a 'data' listener, which would start the stream flowing and take the
 * bytes the PeerAPI's protocol sniff reads).
 */
export function withIdleTimeout<S extends Duplex>(s: S): S & PeerApiStream {
  ensureIdleTimer(s);
  return s;
}

export class NetstackPeerApi {
  private listeners: TcpListener[] = [];
  private serving = '';
  private stack: NetStack | undefined;

  /** Listens on the ports (again only when they or the stack changed). */
  serve(stack: NetStack, ports: PeerApiPorts, accept: (s: PeerApiStream) => void): void {
    const wanted = [...new Set([ports.v4, ports.v6].filter((p) => p > 0))];
    if (wanted.join(',') === this.serving && stack === this.stack) return;
    this.close();
    this.stack = stack;
    for (const port of wanted) {
      this.listeners.push(
        stack.listen(port, (s) => {
          s.on('error', () => {}); // the PeerAPI handles what it cares about; none may crash the engine
          accept(withIdleTimeout(s));
        }),
      );
    }
    this.serving = wanted.join(',');
  }

  close(): void {
    for (const l of this.listeners) l.close();
    this.listeners = [];
    this.serving = '';
    this.stack = undefined;
  }
}
