// Who may talk to the bridge: a request must name this server in its Host header (a DNS-rebinding page sends
// its own host name), a WebSocket's Origin must be this server's page, and the API and uploads need the token.
// Over plain HTTP (loopback only) the names are the loopback ones; over HTTPS they are the certificate's.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { canonicalHost, certificateCovers } from './tls.ts';

export interface GuardOptions {
  token: string;
  /** The address the server listens on. */
  host: string;
  port: number;
  /** Set when serving HTTPS: the certificate's names, the only ones a Host header may carry. */
  tlsNames?: readonly string[];
}

export class RequestGuard {
  readonly #token: Buffer;
  readonly #port: number;
  readonly #scheme: 'http' | 'https';
  readonly #covers: (name: string) => boolean;

  constructor(o: GuardOptions) {
    this.#token = Buffer.from(o.token);
    this.#port = o.port;
    this.#scheme = o.tlsNames ? 'https' : 'http';
    const tlsNames = o.tlsNames;
    if (tlsNames) {
      this.#covers = (name) => certificateCovers(tlsNames, name);
    } else {
      const names = new Set(['127.0.0.1', 'localhost']);
      if (!isWildcard(o.host)) names.add(canonicalHost(o.host));
      this.#covers = (name) => names.has(canonicalHost(name));
    }
  }

  /** Served over HTTPS. */
  get secure(): boolean {
    return this.#scheme === 'https';
  }

  hostAllowed(req: IncomingMessage): boolean {
    const host = req.headers.host;
    return typeof host === 'string' && this.#hostAllowed(host);
  }

  /** A browser always sends Origin on a WebSocket; a missing one is a non-browser client, which has the token. */
  originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false;
    }
    return url.protocol === `${this.#scheme}:` && url.origin === origin.toLowerCase() && this.#hostAllowed(url.host);
  }

  /** Constant-time compare; the token's length is no secret (always 43 characters unless one was given). */
  tokenMatches(given: string | null): boolean {
    if (given === null) return false;
    const g = Buffer.from(given);
    return g.length === this.#token.length && timingSafeEqual(g, this.#token);
  }

  /** "name:port", "[v6]:port", or a bare name when the port is the scheme's default (browsers leave it out). */
  #hostAllowed(hostHeader: string): boolean {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(hostHeader);
    if (!m) return false;
    const port = m[2] === undefined ? (this.#scheme === 'https' ? 443 : 80) : Number(m[2]);
    return port === this.#port && this.#covers(m[1]);
  }
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** An address as it appears in a URL or Host header: IPv6 in brackets. */
export function hostForUrl(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}
