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

/**
 * The handler both protocols call. HTTP/2 requests come as node:http2's compatibility objects, which offer what the
 * handler uses of IncomingMessage/ServerResponse (headers, url, method, reading the body, writeHead, end); `Host` is
 * filled from `:authority` as Go does, and `req.socket` there is the stream's view of the connection.
 */
export type PeerApiHandler = (req: IncomingMessage, res: ServerResponse) => void;

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
 * calls `decided` (the stream paused, its bytes unread). A connection that sends nothing for idleMs, or ends first,
 * is destroyed; at most the preface's length is read.
 */
export function sniffProtocol(socket: Duplex, idleMs: number, decided: (p: SniffResult) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const finish = (p: SniffResult | undefined) => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    if (!p) return void socket.destroy();
    socket.pause();
    if (seen.length > 0) socket.unshift(seen);
    decided(p);
  };
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    if (!seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return finish('http1');
    if (n === H2_PREFACE.length) finish('h2');
  };
  const onEnd = () => finish(undefined);
  const onError = () => finish(undefined);
  const timer = setTimeout(() => finish(undefined), idleMs);
  timer.unref();
  socket.on('data', onData);
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

export class PeerApiIntake {
  private readonly http1: Server;
  private readonly http2: Http2Server;
  /** Open connections per caller address. */
  private readonly conns = new Map<string, number>();
  private readonly open = new Set<PeerApiStream>();

  constructor(private readonly o: IntakeOptions) {
    // No request timeout (a large upload takes as long as it takes); the idle timeout ends a stalled one.
    this.http1 = createHttp1Server({ requestTimeout: 0, headersTimeout: 30_000 }, o.handler);
    this.http1.timeout = o.idleMs;
    this.http1.on('clientError', (_e, sock: Duplex) => sock.destroy());
    this.http2 = createHttp2Server({ settings: { maxConcurrentStreams: MAX_H2_STREAMS } }, (req, res) => {
      if (req.headers.host === undefined && req.authority) req.headers.host = req.authority;
      o.handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
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
      if (p === 'h2') return void this.http2.emit('connection', socket); // it reads what is buffered itself
      this.http1.emit('connection', socket);
      socket.resume(); // paused by the sniff: the HTTP/1.1 parser reads through 'data'
    });
  }

  /** Ends every connection taken so far. */
  close(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
    this.http1.closeAllConnections();
  }
}
