// Where a peer's datagrams go and where one came from. WireGuard treats it as opaque (PeerEndpoint): plain
// WireGuard uses UDP addresses (Endpoint); the tailnet hands it magicsock's per-peer path, which picks a direct
// address or a DERP region itself, so the device never looks a peer up to send.
import { isIP } from 'node:net';
import { parseAddress } from '../packet/ip.ts';

/** What the device needs of an endpoint: bytes and a key naming the sender, for cookies and the rate limiter. */
export interface PeerEndpoint {
  /** The input to the cookie MAC, binding a cookie to its source (wireguard-go: DstToBytes). */
  readonly macSource: Uint8Array;
  /** Handshakes are rate-limited per this key (an IP address, or a node for paths magicsock owns). */
  readonly rateKey: string;
  /** For logs and status: "203.0.113.5:41641", "DERP region 1". */
  describe(): string;
}

export class EndpointError extends Error {
  override readonly name = 'EndpointError';
}

/** A UDP address. */
export class Endpoint implements PeerEndpoint {
  /** The address as 16 bytes (IPv4 mapped into ::ffff:0:0/96), the form batched socket calls take. */
  readonly mapped: Uint8Array;
  /** IP bytes followed by the big-endian port. */
  readonly macSource: Uint8Array;

  private constructor(
    readonly address: string,
    readonly port: number,
    readonly family: 4 | 6,
    ip: Uint8Array,
  ) {
    this.mapped = new Uint8Array(16);
    if (ip.length === 4) {
      this.mapped[10] = this.mapped[11] = 0xff;
      this.mapped.set(ip, 12);
    } else {
      this.mapped.set(ip);
    }
    this.macSource = new Uint8Array(ip.length + 2);
    this.macSource.set(ip);
    this.macSource[ip.length] = port >> 8;
    this.macSource[ip.length + 1] = port & 0xff;
  }

  static of(address: string, port: number): Endpoint {
    const family = isIP(address);
    if (family === 0) throw new EndpointError(`not an IP address: ${JSON.stringify(address)}`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new EndpointError(`bad UDP port ${port}`);
    return new Endpoint(address, port, family as 4 | 6, parseAddress(address));
  }

  get rateKey(): string {
    return this.address;
  }

  describe(): string {
    return this.family === 6 ? `[${this.address}]:${this.port}` : `${this.address}:${this.port}`;
  }
}

export function endpointOf(address: string, port: number): Endpoint {
  return Endpoint.of(address, port);
}

/** Parses "1.2.3.4:51820" or "[2001:db8::1]:51820". Host names are resolved by the caller. */
export function parseEndpoint(text: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new EndpointError(`endpoint must be host:port, got ${JSON.stringify(text)}`);
  return endpointOf(m[1], Number(m[2]));
}

export function formatEndpoint(e: Endpoint): string {
  return e.describe();
}

/** True when b is the same UDP address as a; any other kind of endpoint is the same only as itself. */
export function sameEndpoint(a: PeerEndpoint | undefined, b: PeerEndpoint): boolean {
  if (a === b) return true;
  return a instanceof Endpoint && b instanceof Endpoint && a.port === b.port && a.address === b.address;
}
