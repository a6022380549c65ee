// DNS-over-HTTPS (RFC 8484, GET ?dns= and POST application/dns-message) on the PeerAPI, as tailscaled serves it at
// /dns-query: a peer that uses us as exit node sends its DNS here, over plain HTTP inside WireGuard. Who may ask is
// decided on the engine's thread (same user, or we offer an exit node and the netmap's filter lets that peer reach
// the internet's port 53); the answer comes from the resolvers this host itself uses, over UDP, and over TCP when
// the UDP answer came back truncated. The status codes and texts are tailscaled's, so its clients see no difference.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { DnsForwarder, parseResolver } from './forwarder.ts';

/** tailscaled's limit on a query (base64-decoded or POSTed). */
export const MAX_DOH_QUERY = 256 << 10;
/** tailscaled's bound on one DoH answer. */
export const DOH_TIMEOUT_MS = 5_000;
const MAX_TCP_ANSWER = 65_535;

export type DohRequest = { query: Uint8Array } | { error: string };

/** What a caller of /dns-query may use: absent = refused (403). */
export interface DohAccess {
  /** Upstream resolvers ("ip" or "ip:port"), the first tried over TCP after a truncated answer. */
  resolvers: string[];
}

/** The DNS query of a DoH request, or the 400 text tailscaled gives. `url` is the request target (path and query). */
export function dohQueryOf(
  method: string | undefined,
  url: string,
  contentType: string | undefined,
  body?: Uint8Array,
): DohRequest {
  if (method === 'GET') {
    const q64 = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '').get('dns') ?? '';
    if (q64 === '') {
      return { error: "missing 'dns' parameter; try '?dns=' (DoH standard)" };
    }
    if (Math.floor((q64.length * 3) / 4) > MAX_DOH_QUERY) return { error: 'query too large' };
    if (!/^[A-Za-z0-9_-]+$/.test(q64) || q64.length % 4 === 1) return { error: "invalid 'dns' base64 encoding" };
    return { query: new Uint8Array(Buffer.from(q64, 'base64url')) };
  }
  if (method === 'POST') {
    if (contentType !== 'application/dns-message') return { error: 'unexpected Content-Type' };
    if (!body) return { error: 'error reading post body with DNS query' };
    if (body.length > MAX_DOH_QUERY) return { error: 'query too large' };
    return { query: body };
  }
  return { error: 'bad HTTP method' };
}

/** A query with a header and at least one question; what tailscaled's parser would take. */
function plausibleQuery(q: Uint8Array): boolean {
  return q.length >= 12 + 5 && (q[2] & 0x80) === 0 && ((q[4] << 8) | q[5]) >= 1;
}

const forwarder = new DnsForwarder();

/** The same query over TCP to one resolver (after a truncated UDP answer); undefined on any failure. */
function forwardTcp(query: Uint8Array, resolver: string, timeoutMs: number): Promise<Uint8Array | undefined> {
  const target = parseResolver(resolver);
  if (!target) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const sock = connect({ host: target.host, port: target.port });
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (v: Uint8Array | undefined) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.on('error', () => done(undefined));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      const all = Buffer.concat(chunks, size);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0))
        done(new Uint8Array(all.subarray(2, 2 + all.readUInt16BE(0))));
      else if (size > MAX_TCP_ANSWER + 2) done(undefined);
    });
    sock.on('end', () => done(undefined));
  });
}

/** Answers one DNS query as the exit node would resolve it; undefined when no resolver answered in time. */
export async function resolveForPeer(query: Uint8Array, access: DohAccess): Promise<Uint8Array | undefined> {
  const answer = await forwarder.forward(query, access.resolvers, DOH_TIMEOUT_MS);
  const truncated = answer !== undefined && answer.length >= 3 && (answer[2] & 0x02) !== 0;
  if (!truncated || !access.resolvers[0]) return answer;
  return (await forwardTcp(query, access.resolvers[0], DOH_TIMEOUT_MS)) ?? answer;
}

async function readBody(req: IncomingMessage): Promise<Uint8Array | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_DOH_QUERY + 1) return new Uint8Array(MAX_DOH_QUERY + 1); // only its length matters now
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks, size));
}

function plain(res: ServerResponse, status: number, text: string): void {
  if (!res.headersSent) {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  }
  res.end(`${text}\n`);
}

/** Serves GET/POST /dns-query for a caller the engine gave `access` (undefined: 403, as tailscaled). */
export async function serveDoh(
  req: IncomingMessage,
  res: ServerResponse,
  access: DohAccess | undefined,
): Promise<void> {
  if (!access) {
    req.resume();
    return plain(res, 403, 'DNS access denied');
  }
  if (req.method !== 'POST') req.resume();
  const body = req.method === 'POST' ? await readBody(req).catch(() => undefined) : undefined;
  const parsed = dohQueryOf(req.method, req.url ?? '', req.headers['content-type'], body);
  if ('error' in parsed) return plain(res, 400, parsed.error);
  if (!plausibleQuery(parsed.query)) return plain(res, 500, 'DNS forwarding error');
  const answer = await resolveForPeer(parsed.query, access);
  if (!answer) return plain(res, 500, 'DNS forwarding error');
  res.writeHead(200, { 'content-type': 'application/dns-message', 'content-length': String(answer.length) });
  res.end(answer);
}
