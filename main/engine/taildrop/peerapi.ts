// The PeerAPI server (services.md §2.3–§2.6): plain HTTP/1.1 on each of the node's tailnet addresses, at the port
// tailscaled's algorithm picks, advertised to control as peerapi4/peerapi6. The caller is who the TCP source
// address says (WireGuard already proved it): a connection from an address no netmap node holds is closed without
// a word. Serves Taildrop: PUT /v0/put/<name> (with Range resume), GET /v0/put/<name> (block hashes), GET /v0/put/.
import { readdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { crc32 } from '../packet/crc32.ts';
import { parseAddress } from '../packet/ip.ts';
import type { Inbox } from './inbox.ts';
import { invalidNameReason } from './names.ts';

export interface Caller {
  /** The sender's stable ID (Headscale: the decimal node ID): names its partial files. */
  senderId: string;
  name: string;
  /** Same user, neither node tagged (or granted file-send). */
  mayFileSend: boolean;
}

export interface PeerApiOptions {
  inbox: Inbox;
  /** The netmap node holding this address, or undefined (the connection is then closed). */
  identify: (remoteIp: string) => Caller | undefined;
  /** Our own self CapMap has file-sharing. */
  fileSharing: () => boolean;
  log: (message: string) => void;
  onReceived?: (file: { name: string; size: number; from: string }) => void;
}

const NO_TAILDROP = 'Taildrop disabled; no storage directory';

/** tailscaled's PeerAPI port for an address: 0x8000 | crc32 of its last three bytes (first one + try). */
export function peerApiPort(addr: string, attempt: number): number {
  const b = parseAddress(addr);
  const last3 = Uint8Array.from(b.subarray(b.length - 3));
  last3[0] = (last3[0] + attempt) & 0xff;
  return 0x8000 | (crc32(last3) & 0xffff);
}

export class PeerApi {
  private readonly servers: Server[] = [];
  private readonly inFlight = new Set<string>();
  port4 = 0;
  port6 = 0;

  constructor(private readonly o: PeerApiOptions) {}

  /** Listens on the node's IPv4 and IPv6 tailnet addresses (each on tailscaled's port, else any free one). */
  async listen(addresses: string[]): Promise<void> {
    const v4 = addresses.find((a) => !a.includes(':'));
    const v6 = addresses.find((a) => a.includes(':'));
    if (v4) this.port4 = await this.listenOn(v4);
    if (v6) this.port6 = await this.listenOn(v6, this.port4);
  }

  close(): void {
    for (const s of this.servers) {
      s.close();
      s.closeAllConnections();
    }
    this.servers.length = 0;
  }

  private async listenOn(addr: string, prefer = 0): Promise<number> {
    const server = createServer({ requestTimeout: 0, headersTimeout: 30_000 }, (req, res) => void this.serve(req, res));
    server.on('connection', (sock: Socket) => {
      if (!this.o.identify(unmap(sock.remoteAddress ?? ''))) sock.destroy(); // not a tailnet node: no HTTP at all
    });
    server.on('clientError', (_e, sock: Socket) => sock.destroy());
    const ports = [...(prefer ? [prefer] : []), ...[0, 1, 2, 3, 4].map((i) => peerApiPort(addr, i)), 0];
    for (const port of ports) {
      const ok = await new Promise<boolean>((resolve) => {
        const onError = () => resolve(false);
        server.once('error', onError);
        server.listen(port, addr, () => {
          server.off('error', onError);
          resolve(true);
        });
      });
      if (ok) {
        this.servers.push(server);
        const bound = (server.address() as { port: number }).port;
        this.o.log(`peerapi: serving on http://${addr.includes(':') ? `[${addr}]` : addr}:${bound}`);
        return bound;
      }
    }
    throw new Error(`peerapi: cannot listen on ${addr}`);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const caller = this.o.identify(unmap(req.socket.remoteAddress ?? ''));
    if (!caller) return void req.socket.destroy();
    const fail = (status: number, text: string) => {
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${text}\n`);
    };
    if (req.headers.referer !== undefined || req.headers.origin !== undefined || !this.hostOk(req.headers.host)) {
      return fail(403, 'invalid peerapi request');
    }
    const url = req.url ?? '';
    if (!url.startsWith('/v0/put/')) return fail(404, 'not found');
    if (req.method !== 'GET' && req.method !== 'PUT') return fail(405, 'expected method GET or PUT');
    if (!caller.mayFileSend || !this.o.fileSharing()) return fail(403, NO_TAILDROP);
    let name: string;
    try {
      name = decodeURIComponent(url.slice('/v0/put/'.length).split('?')[0] ?? '');
    } catch {
      return fail(400, 'invalid filename');
    }
    if (req.method === 'GET' && name === '') return this.listPartials(caller, res);
    if (invalidNameReason(name) !== undefined) return fail(400, 'invalid filename');
    if (req.method === 'GET') {
      const blocks = await this.o.inbox.blockHashes(name, caller.senderId).catch(() => []);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        blocks.map((b) => `${JSON.stringify({ checksum: b.checksum, algo: 'sha256', size: b.size })}\n`).join(''),
      );
      return;
    }
    return this.receive(req, res, caller, name, fail);
  }

  private async receive(
    req: IncomingMessage,
    res: ServerResponse,
    caller: Caller,
    name: string,
    fail: (status: number, text: string) => void,
  ): Promise<void> {
    let offset = 0;
    const range = req.headers.range;
    if (range !== undefined) {
      const m = /^bytes=(\d+)-$/.exec(range);
      if (!m) return fail(400, 'invalid Range header');
      offset = Number(m[1]);
    }
    const key = `${caller.senderId}\0${name}`;
    if (this.inFlight.has(key)) return fail(409, 'file already exists');
    this.inFlight.add(key);
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    let copied = 0;
    try {
      const fh = await this.o.inbox.openPartial(name, caller.senderId, offset);
      try {
        for await (const chunk of req as AsyncIterable<Buffer>) {
          await fh.write(chunk, 0, chunk.length, offset + copied); // explicit position: r+ starts at 0
          copied += chunk.length;
        }
      } finally {
        await fh.close();
      }
      if (declared !== undefined && copied !== declared) {
        return fail(500, `short body: ${copied} of ${declared} bytes (the partial file is kept for resuming)`);
      }
      const saved = await this.o.inbox.finalize(name, caller.senderId);
      this.o.log(`taildrop: received ${saved} (${offset + copied} bytes) from ${caller.name}`);
      this.o.onReceived?.({ name: saved, size: offset + copied, from: caller.name });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}\n');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOSPC' || err.code === 'EDQUOT' ? 'no space left on the receiving disk' : err.message;
      this.o.log(`taildrop: receiving ${name} from ${caller.name} failed: ${why}`);
      req.resume();
      fail(err instanceof RangeError ? 400 : 500, why);
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async listPartials(caller: Caller, res: ServerResponse): Promise<void> {
    const suffix = `.${caller.senderId}.partial`;
    const names = (await readdir(this.o.inbox.dir).catch(() => [] as string[])).filter((n) => n.endsWith(suffix));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(names.length ? names : null)}\n`);
  }

  /** Host must be "peer" or one of our addresses with its port (services.md §2.4). */
  private hostOk(host: string | undefined): boolean {
    if (host === 'peer') return true;
    const m = /^(?:\[([0-9a-fA-F:]+)\]|([\d.]+)):(\d+)$/.exec(host ?? '');
    const ip = m?.[1] ?? m?.[2];
    return !!ip && this.servers.some((s) => (s.address() as { address: string } | null)?.address === ip);
  }
}

/** "::ffff:100.64.0.2" → "100.64.0.2". */
function unmap(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}
