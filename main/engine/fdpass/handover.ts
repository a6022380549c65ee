// The descriptor handover, so `trellis file cp` costs the daemon no relaying: the client opens its file as itself
// (the daemon never opens a path a client names), then makes a short second connection to the daemon's socket and
// sends one line with the descriptor attached (SCM_RIGHTS, native/src/fd_pass.cc):
//   {"type":"request","id":0,"cmd":"fdHandover","args":{"token":"<32 hex>"}}\n
// The daemon accepts connections paused, peeks at their first bytes (≤ PEEK_TIMEOUT_MS; a client that waits
// before writing is served after that, its bytes intact), vets the descriptor — a regular file on a local
// filesystem, open for reading — keeps it under the token for KEEP_MS and answers {"type":"reply","id":0,"ok":true}.
// The client's fileSend on its main connection names the token (args.fdToken); the daemon's proxy takes it out and
// passes the descriptor to the engine thread (rpc.ts acceptFds), whose send thread reads its own copy.
// The line is a valid request on purpose: a daemon without this feature reads it as one (the kernel drops the
// descriptor), answers "unknown command" at once, and the client streams. So does every other failure (Windows,
// no addon, a refused descriptor, a busy daemon, an expired token). The token ties the two connections: 128 random
// bits only the client knows, and both connections must come from the same user (SO_PEERCRED).
import { randomBytes } from 'node:crypto';
import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type FdAddon, fdAddon } from './native-fd.ts';

export const HANDOVER_PREFIX = '{"type":"request","id":0,"cmd":"fdHandover"';
const TOKEN = /^[0-9a-f]{32}$/;
/** The client waits this long for the daemon's answer before it streams instead. */
const OFFER_TIMEOUT_MS = 3_000;
/** How long the daemon waits for a new connection's first bytes to tell a handover from a JSON client. */
const PEEK_TIMEOUT_MS = 200;
/** A kept descriptor not claimed by a fileSend within this time is closed. */
const KEEP_MS = 10_000;
const MAX_KEPT = 16;
const MAX_PEEKING = 8;

/** Client: hands fd to the daemon at socketPath; the token to name in fileSend, or undefined (then stream). */
export async function offerDescriptor(socketPath: string, fd: number): Promise<string | undefined> {
  const addon = fdAddon();
  if (!addon) return undefined;
  const token = randomBytes(16).toString('hex');
  const line = Buffer.from(`${HANDOVER_PREFIX},"args":{"token":"${token}"}}\n`);
  try {
    const reply = JSON.parse(
      (await addon.fdSendTo(socketPath, fd, line, OFFER_TIMEOUT_MS)).toString('utf8'),
    ) as unknown;
    const r = reply as { type?: unknown; id?: unknown; ok?: unknown };
    return r?.type === 'reply' && r.id === 0 && r.ok === true ? token : undefined;
  } catch {
    return undefined; // an older daemon, a busy one, or no descriptor passing here: the bytes are streamed
  }
}

interface Kept {
  fd: number;
  size: number;
  /** Who handed it over: only a request from the same user gets it. */
  uid: number;
  timer: NodeJS.Timeout;
}

/** Daemon: descriptors handed over and not yet claimed, by token. */
export class DescriptorStash {
  readonly #kept = new Map<string, Kept>();
  #peeking = 0;

  /** The descriptor kept under token for a request from callerUid (now the caller's to close), if any. */
  take(token: unknown, callerUid: number | undefined): { fd: number; size: number } | undefined {
    if (typeof token !== 'string') return undefined;
    const k = this.#kept.get(token);
    if (!k || k.uid !== callerUid) return undefined;
    this.#kept.delete(token);
    clearTimeout(k.timer);
    return { fd: k.fd, size: k.size };
  }

  close(): void {
    for (const k of this.#kept.values()) {
      clearTimeout(k.timer);
      closeQuietly(k.fd);
    }
    this.#kept.clear();
  }

  /**
   * A new connection, accepted paused (net.Server pauseOnConnect) so libuv has read nothing yet: a handover is
   * answered and closed here; anything else goes to serve. Nothing is consumed while looking, so a JSON client
   * loses no byte; one that stays silent is served after PEEK_TIMEOUT_MS.
   */
  accept(socket: Socket, serve: (socket: Socket) => void): void {
    const addon = fdAddon();
    const fd = socketFd(socket);
    if (!addon || fd === undefined || this.#peeking >= MAX_PEEKING) {
      serve(socket);
      return;
    }
    this.#peeking++;
    addon
      .fdPeek(fd, PEEK_TIMEOUT_MS, HANDOVER_PREFIX.length)
      .then(
        (first) => {
          if (socket.destroyed) return;
          if (first.toString('latin1') === HANDOVER_PREFIX) this.#receive(addon, socket, fd);
          else serve(socket);
        },
        () => serve(socket),
      )
      .finally(() => this.#peeking--);
  }

  #receive(addon: FdAddon, socket: Socket, socketFd: number): void {
    const answer = (ok: boolean, message?: string) => {
      const body = ok ? { ok: true, result: {} } : { ok: false, error: { code: 'bad-request', message } };
      socket.end(`${JSON.stringify({ type: 'reply', id: 0, ...body })}\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    let got: { bytes: Buffer; fd: number };
    try {
      got = addon.fdReceive(socketFd, 1024);
    } catch {
      socket.destroy();
      return;
    }
    const fd = got.fd;
    try {
      const line = got.bytes.toString('utf8');
      const token = (JSON.parse(line.endsWith('\n') ? line : '') as { args?: { token?: unknown } }).args?.token;
      if (typeof token !== 'string' || !TOKEN.test(token) || this.#kept.has(token)) throw new Error('bad token');
      if (fd < 0) throw new Error('no descriptor came with the handover');
      if (this.#kept.size >= MAX_KEPT) throw new Error('too many descriptors waiting');
      const uid = addon.fdPeerUid(socketFd);
      const size = addon.fdCheckReadable(fd);
      if (!Number.isSafeInteger(size) || size < 0) throw new Error('the file has no usable size');
      const timer = setTimeout(() => {
        if (this.#kept.get(token)?.fd !== fd) return;
        this.#kept.delete(token);
        closeQuietly(fd);
      }, KEEP_MS);
      timer.unref();
      this.#kept.set(token, { fd, size, uid, timer });
      answer(true);
    } catch (e) {
      if (fd >= 0) closeQuietly(fd);
      answer(false, `descriptor refused: ${e instanceof Error ? e.message : String(e)}`.slice(0, 200));
    }
  }
}

/** The descriptor of a connected Unix socket (node keeps it in a private field; undefined if that ever goes). */
function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The user at the other end of a daemon connection, or undefined where that cannot be known (no descriptor is
 *  then ever given to its requests). */
export function peerUid(socket: Socket): number | undefined {
  const fd = socketFd(socket);
  const addon = fdAddon();
  if (fd === undefined || !addon) return undefined;
  try {
    return addon.fdPeerUid(fd);
  } catch {
    return undefined;
  }
}

/** Closes a descriptor handed over (natively where possible: see fdClose); never throws. */
export function closeQuietly(fd: number): void {
  try {
    const addon = fdAddon();
    if (addon) addon.fdClose(fd);
    else closeSync(fd);
  } catch {}
}
