// HTTP proxy for userspace networking: CONNECT tunnels and plain HTTP proxying of absolute-URI requests
// (one request per client connection, sent upstream with "Connection: close"). The request head is bounded in
// size and time; a failure gets a status line and one plain sentence.
import type { Socket } from 'node:net';
import { type Dialer, dialTarget, HandshakeReader, ProxyDialError, type Resolver, splice } from './dial.ts';
import { ProxyListener } from './listener.ts';

export interface HttpProxyOptions {
  dial: Dialer;
  resolve?: Resolver;
  headTimeoutMs?: number;
  dialTimeoutMs?: number;
  maxHeadBytes?: number;
  maxClients?: number;
  /** Told of every failed dial (the client only gets a status line). */
  onDialFailure?: (e: ProxyDialError) => void;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
]);

class HttpProxyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 502: 'Bad Gateway', 504: 'Gateway Timeout' };

/** Splits "host:port" or "[v6]:port"; `defaultPort` when the port is absent. */
export function splitHostPort(text: string, defaultPort?: number): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(text) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(text);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || !(port > 0 && port < 65536)) {
    throw new HttpProxyError(400, `the proxy target ${JSON.stringify(text.slice(0, 100))} is not host:port`);
  }
  return { host: m[1], port };
}

export class HttpProxyServer extends ProxyListener {
  private readonly o: Required<Omit<HttpProxyOptions, 'resolve' | 'maxClients' | 'onDialFailure'>> & HttpProxyOptions;

  constructor(options: HttpProxyOptions) {
    super(options.maxClients);
    this.o = { headTimeoutMs: 10_000, dialTimeoutMs: 30_000, maxHeadBytes: 16 * 1024, ...options };
  }

  private fail(s: Socket, status: number, sentence: string): void {
    const body = `${sentence}\n`;
    s.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  protected async serve(s: Socket): Promise<void> {
    const r = new HandshakeReader(s, this.o.maxHeadBytes, this.o.headTimeoutMs);
    let head: string;
    try {
      head = (await r.readUntil('\r\n\r\n')).toString('latin1');
    } catch (e) {
      r.done();
      if (!s.destroyed) this.fail(s, 400, `The request head was not received: ${(e as Error).message}.`);
      return;
    }
    try {
      await this.forward(s, r, head);
    } catch (e) {
      r.done();
      if (e instanceof HttpProxyError) return this.fail(s, e.status, e.message);
      if (e instanceof ProxyDialError) {
        this.o.onDialFailure?.(e);
        return this.fail(s, e.kind === 'timeout' ? 504 : 502, e.message);
      }
      throw e;
    }
  }

  private async forward(s: Socket, r: HandshakeReader, head: string): Promise<void> {
    const lines = head.slice(0, -4).split('\r\n');
    const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0]);
    if (!m) throw new HttpProxyError(400, 'the request line is not HTTP/1.x');
    const [, method, target, version] = m;
    if (method === 'CONNECT') {
      const { host, port } = splitHostPort(target);
      const remote = await dialTarget(host, port, this.o.dial, this.o.resolve, this.o.dialTimeoutMs);
      const early = r.done();
      if (s.destroyed) {
        remote.destroy();
        return;
      }
      s.write(`${version} 200 Connection established\r\n\r\n`);
      if (early.length) remote.write(early);
      splice(s, remote);
      return;
    }
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new HttpProxyError(400, 'the proxy needs an absolute http:// URL or CONNECT');
    }
    if (url.protocol !== 'http:')
      throw new HttpProxyError(400, `the proxy forwards http:// only; use CONNECT for ${url.protocol}`);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = url.port ? Number(url.port) : 80;
    const headers = lines.slice(1).filter((l) => !HOP_BY_HOP.has(l.slice(0, l.indexOf(':')).trim().toLowerCase()));
    if (!headers.some((l) => /^host:/i.test(l))) headers.unshift(`Host: ${url.host}`);
    const upstreamHead = [
      `${method} ${url.pathname}${url.search} ${version}`,
      ...headers,
      'Connection: close',
      '',
      '',
    ].join('\r\n');
    const remote = await dialTarget(host, port, this.o.dial, this.o.resolve, this.o.dialTimeoutMs);
    const early = r.done();
    if (s.destroyed) {
      remote.destroy();
      return;
    }
    remote.write(upstreamHead);
    if (early.length) remote.write(early);
    splice(s, remote);
  }
}
