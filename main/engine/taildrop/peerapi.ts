// The PeerAPI server (docs/protocol/services.md §2.3–§2.6): HTTP/1.1 and h2c on each of the node's tailnet addresses,
// at the port tailscaled's algorithm picks, advertised to control as peerapi4/peerapi6 (connections come through
// peerapi-intake.ts, from the kernel or the userspace stack). The caller is who the TCP source address says
// (WireGuard already proved it). Serves Taildrop: PUT /v0/put/<name> (with Range resume), GET /v0/put/<name> (block
// hashes), GET /v0/put/. A caller cannot hold the server hostage: idle connections are closed, each address has a
// connection cap, and an upload that would push the inbox's disk under a floor of free space is refused with 507
// (partials kept to resume).
import { readdir, statfs } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { type DohAccess, serveDoh } from '../dns/doh.ts';
import { crc32 } from '../packet/crc32.ts';
import { parseAddress } from '../packet/ip.ts';
import type { Inbox } from './inbox.ts';
import { invalidNameReason } from './names.ts';
import { type PeerApiConn, PeerApiIntake, type PeerApiStream } from './peerapi-intake.ts';

export type { PeerApiStream };

import { addSecurityHeaders, type PageCaller, sendBody, sendText, servePage } from './peerapi-pages.ts';
import { writeUploadBody } from './upload-body.ts';

export { DISK_CHECK_BYTES } from './upload-body.ts';

export interface Caller extends PageCaller {
  /** The sender's stable ID (Headscale: the decimal node ID): names its partial files. */
  senderId: string;
  name: string;
  /** Same user, neither node tagged (or granted file-send). */
  mayFileSend: boolean;
  /** May use our DNS-over-HTTPS (/dns-query), with these upstreams; absent = refused. */
  dns?: DohAccess;
}

export interface PeerApiOptions {
  inbox: Inbox;
  /** The netmap node holding this address, or undefined (the connection is then closed). */
  identify: (remoteIp: string) => Caller | undefined;
  /** Our own self CapMap has file-sharing. */
  fileSharing: () => boolean;
  log: (message: string) => void;
  onReceived?: (file: { name: string; size: number; from: string }) => void;
  /** A connection with no byte in either direction for this long is closed (default IDLE_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** Connections one caller address may hold at once (default MAX_CONNECTIONS_PER_PEER); more are closed. */
  maxConnectionsPerPeer?: number;
  /**
   * Write uploads with blocking calls on this thread instead of the thread pool: only for a thread of the PeerAPI's
   * own. A page-cache write of a batch takes a fraction of a millisecond, while the pool's hand-off to another
   * thread and back cost about twice the write itself on the 2-core bench machine (the thread pool is also shared
   * by every thread of the process).
   */
  blockingWrites?: boolean;
  /** The free space of the filesystem holding a directory (default fs.statfs): a test simulates a full disk. */
  statfs?: (dir: string) => Promise<DiskSpace>;
}

/** What the disk check needs of fs.statfs: block size, total blocks, blocks available to us. */
export interface DiskSpace {
  bsize: number;
  blocks: number;
  bavail: number;
}

/** An upload stalled this long has lost its sender; its partial stays for a resume. */
export const IDLE_TIMEOUT_MS = 60_000;
/** A sender needs two (the resume query, the upload); tailscaled sends one file at a time. */
export const MAX_CONNECTIONS_PER_PEER = 8;
/** The free space an upload must leave on the inbox's disk: 5 % of the filesystem, at most 1 GiB. */
export const DISK_FLOOR_MAX_BYTES = 1 << 30;
export const DISK_FLOOR_FRACTION = 0.05;
/** After refusing an upload mid-body, its bytes are read and dropped this long so the sender sees the answer. */
const LINGER_MS = 2_000;

/** Listens on a TCP port of the userspace stack (NetStack.listen); throws when the port is taken. */
export type StackListen = (port: number, onConnection: (s: PeerApiStream) => void) => { close(): void };

/** The floor of free space for a filesystem of totalBytes. */
export function diskFloor(totalBytes: number): number {
  return Math.min(DISK_FLOOR_MAX_BYTES, Math.floor(totalBytes * DISK_FLOOR_FRACTION));
}

/** The offset of a resume (`Range: bytes=N-`, N a safe integer), or undefined when the header is anything else. */
export function parseRangeHeader(header: string): number | undefined {
  const m = /^bytes=(\d{1,16})-$/.exec(header);
  const n = m ? Number(m[1]) : Number.NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Thrown inside an upload that would cross the disk floor. */
class DiskFloorError extends Error {}

const NO_TAILDROP = 'Taildrop disabled; no storage directory';
/** The type Go gives the JSON bodies tailscaled writes without naming one (it sniffs them as text). */
const GO_SNIFFED_TEXT = 'text/plain; charset=utf-8';

/** tailscaled's PeerAPI port for an address: 0x8000 | crc32 of its last three bytes (first one + try). */
export function peerApiPort(addr: string, attempt: number): number {
  const b = parseAddress(addr);
  const last3 = Uint8Array.from(b.subarray(b.length - 3));
  last3[0] = (last3[0] + attempt) & 0xff;
  return 0x8000 | (crc32(last3) & 0xffff);
}

export class PeerApi {
  private readonly servers: Server[] = [];
  /** Set by close(): a listen finishing afterwards lets go of its port at once. */
  private closed = false;
  private readonly stackListeners: { close(): void }[] = [];
  private readonly inFlight = new Set<string>();
  private readonly intake: PeerApiIntake;
  private readonly idleMs: number;
  private readonly statfs: (dir: string) => Promise<DiskSpace>;
  port4 = 0;
  port6 = 0;

  constructor(private readonly o: PeerApiOptions) {
    this.idleMs = o.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.statfs = o.statfs ?? ((dir) => statfs(dir));
    this.intake = new PeerApiIntake({
      handler: (req, res, conn) => void this.serve(req, res, conn),
      known: (ip) => this.o.identify(ip) !== undefined,
      idleMs: this.idleMs,
      maxConnectionsPerPeer: o.maxConnectionsPerPeer ?? MAX_CONNECTIONS_PER_PEER,
    });
  }

  /** Serves one connection from a caller (HTTP/1.1 or h2c), whichever listener took it. */
  acceptConnection(socket: PeerApiStream): void {
    this.intake.accept(socket);
  }

  /** Listens on the node's IPv4 and IPv6 tailnet addresses (each on tailscaled's port, else any free one). */
  async listen(addresses: string[]): Promise<void> {
    const v4 = addresses.find((a) => !a.includes(':'));
    const v6 = addresses.find((a) => a.includes(':'));
    if (v4) this.port4 = await this.listenOn(v4);
    if (v6) this.port6 = await this.listenOn(v6, this.port4);
  }

  /**
   * Userspace networking with the engine's own listeners (services/netstack-peerapi.ts): no OS socket, tailscaled's
   * port for our addresses; each connection arrives through acceptConnection.
   */
  serveWithoutSockets(addresses: string[]): void {
    const v4 = addresses.find((a) => !a.includes(':'));
    const v6 = addresses.find((a) => a.includes(':'));
    this.port4 = v4 ? peerApiPort(v4, 0) : 0;
    this.port6 = v6 ? this.port4 || peerApiPort(v6, 0) : 0;
  }

  /**
   * Userspace mode: listens on the userspace stack (NetStack.listen fits `listen`), one port for every address:
   * tailscaled's for the first IPv4 address, else its next tries. Throws when all are taken.
   */
  listenOnStack(addresses: string[], listen: StackListen): void {
    const first = addresses.find((a) => !a.includes(':')) ?? addresses[0];
    if (!first) throw new Error('peerapi: no tailnet address to serve on');
    for (const port of [0, 1, 2, 3, 4].map((i) => peerApiPort(first, i))) {
      try {
        this.stackListeners.push(listen(port, (s) => this.acceptConnection(s)));
      } catch {
        continue; // taken: the next of tailscaled's tries
      }
      this.port4 = addresses.some((a) => !a.includes(':')) ? port : 0;
      this.port6 = addresses.some((a) => a.includes(':')) ? port : 0;
      return void this.o.log(`peerapi: serving on port ${port} of the userspace stack`);
    }
    throw new Error(`peerapi: cannot listen on the userspace stack for ${first}`);
  }

  close(): void {
    this.closed = true;
    for (const s of this.servers) s.close();
    for (const l of this.stackListeners) l.close();
    this.servers.length = this.stackListeners.length = 0;
    this.intake.close();
  }

  private async listenOn(addr: string, prefer = 0): Promise<number> {
    const server = createServer((sock) => this.acceptConnection(sock));
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
      if (ok && this.closed) {
        server.close();
        throw new Error('peerapi: closed while it started listening');
      }
      if (ok) {
        this.servers.push(server);
        const bound = (server.address() as { port: number }).port;
        this.o.log(`peerapi: serving on http://${addr.includes(':') ? `[${addr}]` : addr}:${bound}`);
        return bound;
      }
    }
    throw new Error(`peerapi: cannot listen on ${addr}`);
  }

  private async serve(req: IncomingMessage, res: ServerResponse, conn: PeerApiConn): Promise<void> {
    const caller = this.o.identify(conn.remoteAddress);
    if (!caller) return void req.socket.destroy();
    const fail = (status: number, text: string) => {
      if (!req.complete) return void answerAndClose(req, res, status, text); // a body still coming: drained first
      if (!res.headersSent) sendText(res, status, text);
      else res.end(`${text}\n`);
    };
    // A browser's request (it names a Referer or an Origin) is refused; an empty header names nothing, as for Go.
    if (req.headers.referer || req.headers.origin || !this.hostOk(req.headers.host, conn.localAddress)) {
      return fail(403, 'invalid peerapi request');
    }
    addSecurityHeaders(req, res);
    const url = req.url ?? '';
    if (url === '/dns-query' || url.startsWith('/dns-query?')) return serveDoh(req, res, caller.dns);
    if (!url.startsWith('/v0/put/')) return servePage(req, res, caller, conn.remoteAddress);
    if (!caller.mayFileSend || !this.o.fileSharing()) return fail(403, NO_TAILDROP);
    if (req.method !== 'GET' && req.method !== 'PUT') return fail(405, 'expected method GET or PUT');
    const name = decodePutName(url);
    if (name === undefined) return fail(400, 'invalid filename');
    if (req.method === 'GET' && name === '') return this.listPartials(caller, res);
    if (invalidNameReason(name) !== undefined) return fail(400, 'invalid filename');
    if (req.method === 'GET') {
      const blocks = await this.busy(req, () => this.o.inbox.blockHashes(name, caller.senderId).catch(() => []));
      const lines = blocks.map((b) => `${JSON.stringify({ checksum: b.checksum, algo: 'sha256', size: b.size })}\n`);
      return sendBody(res, 200, lines.join(''), GO_SNIFFED_TEXT);
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
      const n = parseRangeHeader(range);
      if (n === undefined) return fail(400, 'invalid Range header');
      offset = n;
    }
    const key = `${caller.senderId}\0${name}`;
    if (this.inFlight.has(key)) return fail(409, 'file already exists');
    this.inFlight.add(key);
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    let copied = 0;
    try {
      const short = await this.spaceShortfall(declared ?? 0, false);
      if (short) throw new DiskFloorError(short);
      const fh = await this.o.inbox.openPartial(name, caller.senderId, offset);
      let spliced = false;
      try {
        ({ copied, spliced } = await writeUploadBody({
          req,
          fh,
          offset,
          declared,
          blockingWrites: this.o.blockingWrites === true,
          idleMs: this.idleMs,
          checkpoint: async (done) => {
            const short = await this.spaceShortfall(declared === undefined ? 0 : Math.max(0, declared - done), true);
            if (short) throw new DiskFloorError(short);
          },
        }));
      } finally {
        await fh.close();
      }
      if (declared !== undefined && copied !== declared) {
        return fail(500, `short body: ${copied} of ${declared} bytes (the partial file is kept for resuming)`);
      }
      const saved = await this.busy(req, () => this.o.inbox.finalize(name, caller.senderId));
      this.o.log(`taildrop: received ${saved} (${offset + copied} bytes) from ${caller.name}`);
      this.o.onReceived?.({ name: saved, size: offset + copied, from: caller.name });
      // After a spliced body node's parser does not know where the connection stands: it ends with this answer.
      if (spliced) res.setHeader('connection', 'close');
      sendBody(res, 200, '{}\n', GO_SNIFFED_TEXT);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOSPC' || err.code === 'EDQUOT' ? 'no space left on the receiving disk' : err.message;
      this.o.log(`taildrop: receiving ${name} from ${caller.name} failed: ${why}`);
      answerAndClose(req, res, e instanceof DiskFloorError ? 507 : err instanceof RangeError ? 400 : 500, why);
    } finally {
      this.inFlight.delete(key);
    }
  }

  /**
   * Why writing `more` bytes would leave the inbox's disk under its floor, or '' when it would not. A disk that
   * cannot be measured is not refused (the write itself still fails cleanly with ENOSPC).
   */
  private async spaceShortfall(more: number, writing: boolean): Promise<string> {
    const dir = this.o.inbox.dir;
    const s = await this.statfs(dir).catch(() => this.statfs(path.dirname(dir)).catch(() => undefined));
    if (!s) return '';
    const free = s.bavail * s.bsize;
    const floor = diskFloor(s.blocks * s.bsize);
    if (free - more >= floor) return '';
    const kept = writing ? '; the partial file is kept for resuming' : '';
    return `not enough free space on the receiving disk: ${size(free)} free, ${size(more)} to come and ${size(floor)} kept free${kept}`;
  }

  /** Runs our own slow work (hashing, renaming) with the idle timeout off: the caller is not the one idle. */
  private async busy<T>(req: IncomingMessage, work: () => Promise<T>): Promise<T> {
    req.socket.setTimeout(0);
    try {
      return await work();
    } finally {
      if (!req.socket.destroyed) req.socket.setTimeout(this.idleMs);
    }
  }

  private async listPartials(caller: Caller, res: ServerResponse): Promise<void> {
    const suffix = `.${caller.senderId}.partial`;
    const names = (await readdir(this.o.inbox.dir).catch(() => [] as string[])).filter((n) => n.endsWith(suffix));
    sendBody(res, 200, `${JSON.stringify(names.length ? names : null)}\n`, GO_SNIFFED_TEXT);
  }

  /**
   * Host must be "peer" or one of our addresses with its port (docs/protocol/services.md §2.4): an address we listen
   * on, or the one this connection came to (in userspace mode nothing listens in the kernel).
   */
  private hostOk(host: string | undefined, local: string): boolean {
    if (host === 'peer') return true;
    const m = /^(?:\[([0-9a-fA-F:]+)\]|([\d.]+)):(\d+)$/.exec(host ?? '');
    const ip = m?.[1] ?? m?.[2];
    if (!ip) return false;
    if (local === ip) return true;
    return this.servers.some((s) => (s.address() as { address: string } | null)?.address === ip);
  }
}

/**
 * Answers a request whose body is still coming. Node marks such an answer "Connection: close" and destroys the
 * socket once it is sent, which resets a sender still writing before it has read the answer. So the answer keeps
 * the connection, the rest of the body is read and dropped, and a sender still sending LINGER_MS later is cut.
 */
function answerAndClose(req: IncomingMessage, res: ServerResponse, status: number, text: string): void {
  const sock = res.socket ?? req.socket;
  req.resume();
  const cutIfStillSending = () => {
    if (req.complete || !sock || sock.destroyed) return;
    setTimeout(() => {
      if (req.complete || sock.destroyed) return;
      sock.end();
      setTimeout(() => sock.destroy(), LINGER_MS).unref();
    }, LINGER_MS).unref();
  };
  if (res.headersSent && !res.writableEnded) return void sock?.destroy(); // half an answer: nothing to add to it
  if (res.headersSent || !sock || sock.destroyed) return void cutIfStillSending();
  res.shouldKeepAlive = true;
  const body = `${text}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body, cutIfStillSending);
}

function size(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(1)} GiB`;
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${bytes} bytes`;
}

/** The file name in a /v0/put/<name>[?query] path, percent-decoded ('' for the listing); undefined when the path is
 *  not one or does not decode. */
export function decodePutName(url: string): string | undefined {
  if (!url.startsWith('/v0/put/')) return undefined;
  try {
    return decodeURIComponent(url.slice('/v0/put/'.length).split('?')[0] ?? '');
  } catch {
    return undefined;
  }
}
