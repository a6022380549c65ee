// Forwarding for quad-100 (docs/protocol/services.md §3.4.4): the query's bytes to every resolver of the route at
// once over UDP (or POSTed to an exit node's DoH URL); the first answer with the query's ID wins and is relayed as
// it is. All failing, or nothing within the cap, is
// undefined (the caller answers SERVFAIL). Upstream REFUSED/SERVFAIL count as failures while others may answer.
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

/** Per-query cap (tailscale: 10 s). */
export const FORWARD_TIMEOUT_MS = 10_000;
/** At most this many queries in flight: a flood of unanswerable names must not open sockets without bound. */
const MAX_IN_FLIGHT = 256;

/** "ip" (port 53), "ip:port" or "[v6]:port" → host and port; undefined when it is neither. */
export function parseResolver(addr: string): { host: string; port: number } | undefined {
  if (isIP(addr)) return { host: addr, port: 53 };
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(addr) ?? /^([\d.]+):(\d+)$/.exec(addr);
  const port = Number(m?.[2]);
  if (!m?.[1] || !isIP(m[1]) || !(port > 0 && port < 65536)) return undefined;
  return { host: m[1], port };
}

/** An exit node's DoH on its PeerAPI (http://ip:port/dns-query; docs/protocol/routes.md): plain HTTP inside WireGuard. */
export function isDohUrl(addr: string): boolean {
  return /^http:\/\/[^/]+\/dns-query$/.test(addr);
}

/** A DNS message is at most 64 KiB: a DoH body past that is not an answer. */
const MAX_DOH_ANSWER = 65_535;

/** POSTs the query to a DoH URL; the answer's bytes, or undefined on any failure or when aborted. */
async function askDoh(url: string, query: Uint8Array, signal: AbortSignal): Promise<Uint8Array | undefined> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/dns-message', accept: 'application/dns-message' },
      body: query,
      signal,
      redirect: 'error',
    });
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel();
      return undefined;
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const c of res.body) {
      size += c.length;
      if (size > MAX_DOH_ANSWER) return undefined;
      chunks.push(c);
    }
    return new Uint8Array(Buffer.concat(chunks));
  } catch {
    return undefined;
  }
}

export class DnsForwarder {
  private inFlight = 0;
  /** Queries not forwarded because MAX_IN_FLIGHT were already waiting. */
  refused = 0;

  async forward(
    query: Uint8Array,
    resolvers: string[],
    timeoutMs = FORWARD_TIMEOUT_MS,
  ): Promise<Uint8Array | undefined> {
    const targets = resolvers.map(parseResolver).filter((r) => r !== undefined);
    const dohUrls = resolvers.filter(isDohUrl);
    if (targets.length + dohUrls.length === 0 || query.length < 12) return undefined;
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.refused++;
      return undefined;
    }
    this.inFlight++;
    const id = (query[0] << 8) | query[1];
    const sockets: Socket[] = [];
    const abort = new AbortController();
    try {
      return await new Promise<Uint8Array | undefined>((resolve) => {
        let pending = targets.length + dohUrls.length;
        const timer = setTimeout(() => resolve(undefined), timeoutMs);
        const fail = () => {
          if (--pending === 0) {
            clearTimeout(timer);
            resolve(undefined);
          }
        };
        // The first answer with our ID wins; SERVFAIL and REFUSED let another resolver answer.
        const offer = (msg: Uint8Array | undefined, settle: (f: () => void) => void): boolean => {
          if (!msg || msg.length < 12 || ((msg[0] << 8) | msg[1]) !== id || !(msg[2] & 0x80)) return false;
          const rcode = msg[3] & 0x0f;
          settle(() => {
            if (rcode === 2 || rcode === 5) return fail();
            clearTimeout(timer);
            resolve(new Uint8Array(msg));
          });
          return true;
        };
        for (const url of dohUrls) {
          let done = false;
          const once = (f: () => void) => {
            if (!done) {
              done = true;
              f();
            }
          };
          void askDoh(url, query, abort.signal).then((msg) => {
            if (!offer(msg, once)) once(fail);
          });
        }
        for (const t of targets) {
          const s = createSocket(isIP(t.host) === 6 ? 'udp6' : 'udp4');
          sockets.push(s);
          let done = false;
          const once = (f: () => void) => {
            if (!done) {
              done = true;
              f();
            }
          };
          s.on('error', () => once(fail));
          s.on('message', (msg) => {
            offer(msg, once); // not our answer: keep listening
          });
          s.send(query, t.port, t.host, (e) => {
            if (e) once(fail);
          });
        }
      });
    } finally {
      this.inFlight--;
      abort.abort();
      for (const s of sockets) s.close();
    }
  }
}
