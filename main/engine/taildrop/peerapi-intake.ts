// The PeerAPI's connection intake: every connection to the PeerAPI comes here, from the kernel's TCP (a net.Server
// in TUN mode) or from the userspace stack (a netstack TcpSocket). A connection from an address no netmap node holds
// is closed without a word, and each caller address has a cap. Like tailscaled (an h2c handler around its HTTP
// server), the same port speaks HTTP/1.1 and cleartext HTTP/2 with prior knowledge: the first bytes decide which.
// Both protocols reach the one request handler, so every answer is the same over either.
import { createServer as createHttp1Server, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { Duplex } from 'node:stream';

/** A byte stream from a caller: a net.Socket (TUN mode) or a netstack TcpSocket (userspace mode). */
export type PeerApiStream = Duplex & {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
};

/** What every HTTP/2 client sends first (RFC 9113 §3.4); anything else is HTTP/1.1. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Streams one HTTP/2 connection may have open at once (Go's server allows 250; ours are uploads and small pages). */
const MAX_H2_STREAMS = 32;

/** The connection a request came on: the caller's address and ours, IPv4-mapped addresses unmapped. */
export interface PeerApiConn {
  remoteAddress: string;
  localAddress: string;
}

/**
 * The handler both protocols call. HTTP/2 requests come as node:http2's compatibility objects, which offer what the
 * handler uses of IncomingMessage/ServerResponse (headers, url, method, reading the body, writeHead, end); `Host` is
 * filled from `:authority` as Go does. The addresses come apart from `req.socket`: node:http2 wraps a stream that is
 * not a kernel socket (the netstack's) in a socket of its own, which knows no addresses.
 */
export type PeerApiHandler = (req: IncomingMessage, res: ServerResponse, conn: PeerApiConn) => void;

export interface IntakeOptions {
  handler: PeerApiHandler;
  /** Whether a netmap node holds this caller address (else the connection is closed). */
  known: (remoteIp: string) => boolean;
  idleMs: number;
  maxConnectionsPerPeer: number;
}

export type SniffResult = 'h2' | 'http1';

/**
 * Reads a connection's first bytes until they tell HTTP/2's preface from anything else, then puts them back and
 * calls `decided` with the stream's bytes unread. A connection that sends nothing for idleMs, or ends first, is
 * destroyed; at most the preface's length is waited for.
 * Read in paused mode ('readable'), and handed over a tick later, once the stream has forgotten that listener: a
 * stream that once flowed ('data') or was paused keeps that state, and node:http's parser then never pauses the
 * socket when a request body is not read, so an upload would pile up in memory.
 */
export function sniffProtocol(socket: Duplex, idleMs: number, decided: (p: SniffResult) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const finish = (p: SniffResult | undefined) => {
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('error', onError);
    if (!p) return void socket.destroy();
    if (seen.length > 0) socket.unshift(seen);
    process.nextTick(() => {
      if (!socket.destroyed) decided(p);
    });
  };
  const onReadable = () => {
    for (let chunk = socket.read() as Buffer | null; chunk; chunk = socket.read() as Buffer | null) {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      if (!seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return finish('http1');
      if (n === H2_PREFACE.length) return finish('h2');
    }
  };
  const onEnd = () => finish(undefined);
  const onError = () => finish(undefined);
  const timer = setTimeout(() => finish(undefined), idleMs);
  timer.unref();
  socket.on('readable', onReadable);
  socket.once('end', onEnd);
  socket.once('error', onError);
}

/**
 * Gives a stream without net.Socket's setTimeout (the netstack's TcpSocket) one with its meaning: 'timeout' after
 * msecs with no byte read or written. The HTTP/1.1 server and the upload code rely on it for the idle timeout.
 */
export function ensureIdleTimer(socket: PeerApiStream): void {
  const s = socket as PeerApiStream & { setTimeout?: unknown };
  if (typeof s.setTimeout === 'function') return;
  let ms = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    if (ms > 0 && !socket.destroyed) {
      timer = setTimeout(() => socket.emit('timeout'), ms);
      timer.unref();
    }
  };
  const push = socket.push.bind(socket);
  socket.push = (chunk: unknown, encoding?: BufferEncoding) => {
    arm();
    return push(chunk, encoding);
  };
  const write = socket._write.bind(socket);
  socket._write = (chunk: unknown, encoding: BufferEncoding, cb: (err?: Error | null) => void) => {
    arm();
    write(chunk, encoding, cb);
  };
  socket.once('close', () => clearTimeout(timer));
  Object.assign(socket, {
    setTimeout(msecs: number, onTimeout?: () => void) {
      ms = msecs;
      if (onTimeout) {
        if (msecs === 0) socket.off('timeout', onTimeout);
        else socket.once('timeout', onTimeout);
      }
      arm();
      return socket;
    },
  });
}

/** "::ffff:100.64.0.2" → "100.64.0.2". */
export function unmap(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

function connOf(s: PeerApiStream): PeerApiConn {
  return { remoteAddress: unmap(s.remoteAddress ?? ''), localAddress: unmap(s.localAddress ?? '') };
}

export class PeerApiIntake {
  private readonly http1: Server;
  private readonly http2: Http2Server;
  /** Open connections per caller address. */
  private readonly conns = new Map<string, number>();
  private readonly open = new Set<PeerApiStream>();
  /** Each HTTP/2 session's connection, set as node:http2 makes the session (synchronously in emit('connection')). */
  private readonly sessions = new WeakMap<object, PeerApiConn>();
  private handingOver: PeerApiConn | undefined;

  constructor(private readonly o: IntakeOptions) {
    // No request timeout (a large upload takes as long as it takes); the idle timeout ends a stalled one.
    this.http1 = createHttp1Server({ requestTimeout: 0, headersTimeout: 30_000 }, (req, res) =>
      o.handler(req, res, connOf(req.socket)),
    );
    this.http1.timeout = o.idleMs;
    this.http1.on('clientError', (_e, sock: Duplex) => sock.destroy());
    this.http2 = createHttp2Server({ settings: { maxConcurrentStreams: MAX_H2_STREAMS } }, (req, res) => {
      const conn = this.sessions.get(req.stream.session ?? {});
      if (!conn) return void req.stream.close(); // cannot happen: every session is made in accept()
      if (req.headers.host === undefined && req.authority) req.headers.host = req.authority;
      o.handler(req as unknown as IncomingMessage, res as unknown as ServerResponse, conn);
    });
    this.http2.on('session', (session) => {
      if (this.handingOver) this.sessions.set(session, this.handingOver);
    });
    this.http2.setTimeout(o.idleMs); // no frame either way for this long: the session ends
    this.http2.on('sessionError', () => {}); // a broken session is destroyed; nothing else to do
  }

  /** Takes one connection: known caller under its cap, then HTTP/2 or HTTP/1.1 by its first bytes. */
  accept(socket: PeerApiStream): void {
    socket.on('error', () => {}); // a reset caller is not our error; the servers see the close
    const ip = unmap(socket.remoteAddress ?? '');
    if (!this.o.known(ip)) return void socket.destroy(); // not a tailnet node: no HTTP at all
    const count = this.conns.get(ip) ?? 0;
    if (count >= this.o.maxConnectionsPerPeer) return void socket.destroy();
    this.conns.set(ip, count + 1);
    this.open.add(socket);
    socket.once('close', () => {
      this.open.delete(socket);
      const left = (this.conns.get(ip) ?? 1) - 1;
      if (left > 0) this.conns.set(ip, left);
      else this.conns.delete(ip);
    });
    ensureIdleTimer(socket);
    sniffProtocol(socket, this.o.idleMs, (p) => {
      if (p === 'h2') {
        this.handingOver = connOf(socket);
        try {
          this.http2.emit('connection', socket); // it reads what is buffered itself
        } finally {
          this.handingOver = undefined;
        }
        return;
      }
      this.http1.emit('connection', socket);
    });
  }

  /** Ends every connection taken so far. */
  close(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
    this.http1.closeAllConnections();
  }
}
