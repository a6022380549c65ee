// Userspace networking with an exit node: the proxies' names outside the tailnet are asked of the exit node's
// DNS-over-HTTPS (its PeerAPI's /dns-query), over the netstack, as tailscaled resolves them then: the host's own
// resolver would tell the local network every name the user visits through the exit node.
import { request } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import dnsPacket from 'dns-packet';

const DOH_TIMEOUT_MS = 5_000;
const MAX_ANSWER = 65_535;

export class DohLookupError extends Error {
  override readonly name = 'DohLookupError';
}

/** POSTs one DNS message to url through dial; the answer's bytes. */
async function post(
  url: URL,
  query: Uint8Array,
  dial: (address: string, port: number) => Promise<Duplex>,
): Promise<Buffer> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port) || 80;
  const socket = await new Promise<Duplex>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new DohLookupError("the exit node's DNS could not be reached in time"));
    }, DOH_TIMEOUT_MS);
    dial(host, port).then(
      (s) => {
        if (late) return void s.destroy();
        clearTimeout(timer);
        resolve(s);
      },
      (e: Error) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/dns-message', accept: 'application/dns-message' },
        agent: undefined, // node's HTTP client ignores createConnection when an agent is set
        createConnection: () => socket as Socket,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER) req.destroy(new DohLookupError('the DNS answer is too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new DohLookupError(`the exit node's DNS answered ${res.statusCode}`));
          else resolve(Buffer.concat(chunks));
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(
      () => req.destroy(new DohLookupError("the exit node's DNS did not answer in time")),
      DOH_TIMEOUT_MS,
    );
    req.on('close', () => {
      clearTimeout(timer);
      socket.destroy();
    });
    req.on('error', reject);
    req.end(query);
  });
}

/** The name's IPv4 and IPv6 addresses from the DoH server at url (dialed through dial). Throws one sentence. */
export async function resolveThroughDoh(
  url: string,
  name: string,
  dial: (address: string, port: number) => Promise<Duplex>,
): Promise<string[]> {
  const where = new URL(url);
  const ask = async (type: 'A' | 'AAAA'): Promise<string[]> => {
    const query = dnsPacket.encode({
      type: 'query',
      id: 0,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name }],
    });
    const answer = dnsPacket.decode(await post(where, query, dial));
    return (answer.answers ?? []).filter((a) => a.type === type).map((a) => String((a as { data?: unknown }).data));
  };
  const [v4, v6] = await Promise.allSettled([ask('A'), ask('AAAA')]);
  const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (out.length > 0) return out;
  if (v4.status === 'rejected') throw new DohLookupError(`${name}: ${(v4.reason as Error).message}`);
  throw new DohLookupError(`${name} has no address (asked the exit node's DNS)`);
}
