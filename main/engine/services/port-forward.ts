// Port forwards for userspace mode (issue 15, item 3): with no TUN, a local service is not reachable from the
// tailnet by itself, so each forward listens on a tailnet TCP port of the userspace stack and splices every
// connection to 127.0.0.1:LOCAL_PORT, as tailscaled's netstack forwards to local listeners. With a TUN the local
// listener is reachable directly and nothing here runs. Entries come from the pref forwardPorts: "PORT" or
// "TAILNET_PORT=LOCAL_PORT".
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  ForwardPortsError,
  formatForwardPorts,
  MAX_FORWARDS,
  type PortForward,
  parseForwardPorts,
} from '../../shared/forward-ports.ts';
import type { TcpListener } from '../netstack/stack.ts';
import { EngineError } from '../protocol.ts';

// The pref's parser lives in main/shared (the window checks with it too); its users here import it from this file.
export { ForwardPortsError, formatForwardPorts, MAX_FORWARDS, type PortForward, parseForwardPorts };

/** Connections all forwards together carry at once; more are reset. */
export const MAX_FORWARDED_CONNECTIONS = 256;
/** A local service that does not accept within this long: the tailnet connection is reset. */
export const LOCAL_CONNECT_TIMEOUT_MS = 5_000;

/** A setPrefs call's forwardPorts, checked (EngineError 'bad-request' naming each bad entry) and in canonical form;
 *  undefined when not given. */
export function checkForwardPortsPref(v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new EngineError('bad-request', 'forwardPorts must be a list of port forwards');
  try {
    return formatForwardPorts(parseForwardPorts(v));
  } catch (e) {
    if (e instanceof ForwardPortsError) throw new EngineError('bad-request', e.message);
    throw e;
  }
}

export interface PortForwarderOptions {
  /** Listens on a tailnet TCP port: the userspace stack's NetStack.listen. */
  listen(port: number): TcpListener;
  /** Opens the local connection (default: TCP to 127.0.0.1:port, half-open allowed). */
  connectLocal?(port: number): Socket;
  log(message: string): void;
  connectTimeoutMs?: number;
  maxConnections?: number;
}

/** A tailnet-side connection: the netstack's TcpSocket (resetAndDestroy sends RST) or any Duplex. */
type TailnetStream = Duplex & { resetAndDestroy?: () => unknown; remoteAddress?: string };

export class PortForwarder {
  private readonly listeners = new Map<number, { listener: TcpListener; localPort: number }>();
  private readonly open = new Set<TailnetStream>();
  private readonly connectTimeoutMs: number;
  private readonly maxConnections: number;

  constructor(private readonly o: PortForwarderOptions) {
    this.connectTimeoutMs = o.connectTimeoutMs ?? LOCAL_CONNECT_TIMEOUT_MS;
    this.maxConnections = o.maxConnections ?? MAX_FORWARDED_CONNECTIONS;
  }

  /** Connections being carried now (both sides counted once). */
  get connections(): number {
    return this.open.size;
  }

  /**
   * Forwards exactly these entries (the pref's value): new tailnet ports start listening, dropped ones stop (their
   * connections carry on until they end), a changed local port applies to new connections. Throws
   * ForwardPortsError (nothing changed) for a bad entry; a port the stack cannot listen on is logged and skipped.
   */
  set(entries: readonly string[]): void {
    const wanted = new Map(parseForwardPorts(entries).map((f) => [f.tailnetPort, f.localPort]));
    for (const [port, l] of this.listeners) {
      if (wanted.has(port)) continue;
      l.listener.close();
      this.listeners.delete(port);
      this.o.log(`port forward: stopped forwarding tailnet port ${port}`);
    }
    for (const [port, localPort] of wanted) {
      const existing = this.listeners.get(port);
      if (existing) {
        existing.localPort = localPort;
        continue;
      }
      let listener: TcpListener;
      try {
        listener = this.o.listen(port);
      } catch (e) {
        this.o.log(`port forward: cannot listen on tailnet port ${port}: ${(e as Error).message}`);
        continue;
      }
      const entry = { listener, localPort };
      listener.on('connection', (s: TailnetStream) => this.carry(s, entry.localPort));
      this.listeners.set(port, entry);
      this.o.log(`port forward: tailnet port ${port} → 127.0.0.1:${localPort}`);
    }
  }

  /** Stops every forward and ends every connection. */
  close(): void {
    for (const { listener } of this.listeners.values()) listener.close();
    this.listeners.clear();
    for (const s of this.open) reset(s); // the peer hears of it at once, not at its next write
    this.open.clear();
  }

  private carry(remote: TailnetStream, localPort: number): void {
    remote.on('error', () => {});
    if (this.open.size >= this.maxConnections) {
      this.o.log(`port forward: too many connections; refused one from ${remote.remoteAddress ?? 'a peer'}`);
      return void reset(remote);
    }
    const local = (this.o.connectLocal ?? connectLoopback)(localPort);
    this.open.add(remote);
    let connected = false;
    const fail = (why: string) => {
      if (remote.destroyed) return; // already cut (and said so)
      clearTimeout(timer);
      this.o.log(`port forward: ${why}; the tailnet connection is reset`);
      local.destroy();
      reset(remote);
    };
    const ms = this.connectTimeoutMs;
    const timer = setTimeout(() => fail(`127.0.0.1:${localPort} did not accept within ${ms} ms`), ms);
    local.on('error', (e: NodeJS.ErrnoException) => {
      if (connected) return reset(remote); // a failure after the connect resets the tailnet side
      fail(
        e.code === 'ECONNREFUSED'
          ? `nothing listens on 127.0.0.1:${localPort}`
          : `127.0.0.1:${localPort}: ${e.message}`,
      );
    });
    local.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      // Each end is passed on as a half-close; the other direction carries on until it ends too.
      remote.pipe(local);
      local.pipe(remote);
    });
    // A side that closes without having ended both ways was cut: the other side is cut too, not left open.
    remote.once('close', () => {
      this.open.delete(remote);
      clearTimeout(timer);
      if (local.destroyed) return;
      if (!connected) local.destroy();
      else if (!remote.readableEnded || !remote.writableFinished) local.resetAndDestroy();
    });
    local.once('close', () => {
      if (!remote.destroyed && (!local.readableEnded || !local.writableFinished)) reset(remote);
    });
  }
}

function connectLoopback(port: number): Socket {
  return connect({ host: '127.0.0.1', port, allowHalfOpen: true });
}

function reset(s: TailnetStream): void {
  if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
  else s.destroy();
}
