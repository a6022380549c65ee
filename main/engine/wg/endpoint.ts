// Where a peer's datagrams go: an IP address and UDP port. The byte form binds cookies to the source.
import { isIP } from 'node:net';
import { parseAddress } from '../packet/ip.ts';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** The address as 16 bytes (IPv4 mapped into ::ffff:0:0/96), the form batched socket calls take. */
  readonly mapped: Uint8Array;
}

export class EndpointError extends Error {
  override readonly name = 'EndpointError';
}

export function endpointOf(address: string, port: number): Endpoint {
  const family = isIP(address);
  if (family === 0) throw new EndpointError(`not an IP address: ${JSON.stringify(address)}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new EndpointError(`bad UDP port ${port}`);
  const bytes = parseAddress(address);
  const mapped = new Uint8Array(16);
  if (bytes.length === 4) {
    mapped[10] = mapped[11] = 0xff;
    mapped.set(bytes, 12);
  } else {
    mapped.set(bytes);
  }
  return { address, port, family: family as 4 | 6, mapped };
}

/** Parses "1.2.3.4:51820" or "[2001:db8::1]:51820". Host names are resolved by the caller. */
export function parseEndpoint(text: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new EndpointError(`endpoint must be host:port, got ${JSON.stringify(text)}`);
  return endpointOf(m[1], Number(m[2]));
}

export function formatEndpoint(e: Endpoint): string {
  return e.family === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export function sameEndpoint(a: Endpoint | undefined, b: Endpoint): boolean {
  return a !== undefined && a.port === b.port && a.address === b.address;
}

/** IP bytes followed by the big-endian port: the input to the cookie MAC. */
export function endpointBytes(e: Endpoint): Uint8Array {
  const ip = parseAddress(e.address);
  const out = new Uint8Array(ip.length + 2);
  out.set(ip);
  out[ip.length] = e.port >> 8;
  out[ip.length + 1] = e.port & 0xff;
  return out;
}
