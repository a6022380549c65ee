// Who may talk to the bridge: a request must name this server in its Host header (a DNS-rebinding page sends
// its own host name), a WebSocket's Origin must be this server's page, and the API and uploads need the token.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export class RequestGuard {
  readonly #token: Buffer;
  readonly #hosts: Set<string>;
  readonly #origins: Set<string>;

  /** host is the address the server listens on; loopback names are always accepted. */
  constructor(token: string, host: string, port: number) {
    this.#token = Buffer.from(token);
    const names = new Set(['127.0.0.1', 'localhost']);
    if (!isWildcard(host)) names.add(hostForUrl(host));
    this.#hosts = new Set([...names].map((n) => `${n}:${port}`.toLowerCase()));
    this.#origins = new Set([...this.#hosts].map((h) => `http://${h}`));
  }

  hostAllowed(req: IncomingMessage): boolean {
    const host = req.headers.host;
    return typeof host === 'string' && this.#hosts.has(host.toLowerCase());
  }

  /** A browser always sends Origin on a WebSocket; a missing one is a non-browser client, which has the token. */
  originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    return origin === undefined || this.#origins.has(origin.toLowerCase());
  }

  /** Constant-time compare; the token's length is no secret (always 43 characters unless one was given). */
  tokenMatches(given: string | null): boolean {
    if (given === null) return false;
    const g = Buffer.from(given);
    return g.length === this.#token.length && timingSafeEqual(g, this.#token);
  }
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** An address as it appears in a URL or Host header: IPv6 in brackets. */
export function hostForUrl(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}
