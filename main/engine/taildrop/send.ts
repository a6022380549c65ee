// Sending one file to a peer's PeerAPI as tailscaled does (docs/protocol/services.md §2.5–§2.6): ask for the block hashes of a
// partial the receiver may hold from an earlier attempt, skip the blocks that match, PUT the rest with
// `Range: bytes=<offset>-`. Progress is reported as bytes go out; an AbortSignal cancels. The file is a ByteSource:
// the caller opened it (the engine never opens a path a client names) and it is read in order, a few reads ahead.
import { createHash } from 'node:crypto';
import { type IncomingMessage, request } from 'node:http';
import type { Socket } from 'node:net';
import { type Duplex, Readable } from 'node:stream';
import { sourceFd } from '../fdpass/fd-source.ts';
import type { ByteSource } from '../protocol.ts';
import { readAhead } from './byte-source.ts';
import { BLOCK_SIZE } from './inbox.ts';
import type { KernelCopyAddon } from './kernel-copy.ts';
import { sendBodyWithSendfile } from './send-sendfile.ts';

/** Reads of the file kept in flight while sending: each crosses threads and the caller's socket, a round trip
 *  that takes longest exactly when the tunnel is busiest, and the upload must not run dry meanwhile (8 MiB). */
const SEND_READS_AHEAD = 8;

export interface SendProgress {
  name: string;
  sent: number;
  total: number;
  /** Bytes skipped because the receiver already had them. */
  resumedFrom: number;
  bytesPerSecond: number;
}

export interface SendOptions {
  /** http://ip:port (peerapi4) or http://[ip]:port (peerapi6). */
  base: string;
  source: ByteSource;
  name: string;
  onProgress?: (p: SendProgress) => void;
  signal?: AbortSignal;
  /** Give up when no byte has gone out for this long (a dead link); default STALL_MS. */
  stallMs?: number;
  /** Opens the connection to the peer (userspace networking: through the netstack); default: an OS socket. */
  connect?: PeerConnector;
  /** The send thread owns the source's descriptor and may block briefly: the body goes by sendfile(2) when it can
   *  (send-sendfile.ts). An addon object instead of true: tests (a failing sendfile). */
  kernelCopy?: boolean | KernelCopyAddon;
}

/** A connected stream to host:port that node's HTTP client can use (setTimeout included). */
export type PeerConnector = (host: string, port: number) => Promise<Duplex>;

/** http.request's createConnection for a connector's stream, opened first; nothing when there is no connector. */
async function connectionFor(url: string, connect: PeerConnector | undefined) {
  if (!connect) return {};
  const u = new URL(url);
  const socket = await connect(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port) || 80);
  // No agent: node's HTTP client ignores createConnection when one is set (agent: false makes a fresh one).
  return { agent: undefined, createConnection: () => socket as Socket };
}

/** A transfer with no progress for this long has lost its path; the partial stays with the peer for a resume. */
export const STALL_MS = 20_000;

export class TaildropSendError extends Error {
  override readonly name = 'TaildropSendError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Sends the file; resolves with the byte counts once the receiver answered 200. */
export async function sendFile(o: SendOptions): Promise<{ total: number; resumedFrom: number }> {
  const total = o.source.size;
  const put = `${o.base}/v0/put/${encodeURIComponent(o.name)}`;
  const blocks = await remoteBlocks(put, o.signal, o.connect);
  if (blocks === null) {
    // No answer at all (a path still coming back, a peer busy closing our cut upload): sending everything now
    // would throw away what it holds, so this attempt fails and a retry asks again.
    throw Object.assign(new TaildropSendError('the peer did not answer the resume query'), { code: 'ETIMEDOUT' });
  }
  const resumedFrom = await matchingPrefix(o.source, blocks);
  const started = performance.now();
  let sent = resumedFrom;
  let lastReport = 0;
  const report = (force = false) => {
    const now = performance.now();
    if (!force && now - lastReport < 250) return;
    lastReport = now;
    const secs = Math.max((now - started) / 1000, 1e-3);
    o.onProgress?.({ name: o.name, sent, total, resumedFrom, bytesPerSecond: (sent - resumedFrom) / secs });
  };
  const via = await connectionFor(put, o.connect);
  /** The body going out by sendfile: the file's descriptor is in use until it settles. */
  let bodyOut: Promise<void> = Promise.resolve();
  try {
    await requestWithBody();
  } finally {
    await bodyOut;
  }
  report(true);
  return { total, resumedFrom };

  function requestWithBody() {
    return new Promise<void>((resolve, reject) => {
      const headers: Record<string, string | number> = { host: 'peer', 'content-length': total - resumedFrom };
      if (resumedFrom > 0) headers.range = `bytes=${resumedFrom}-`;
      const req = request(put, { method: 'PUT', headers, agent: false, signal: o.signal, ...via }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          if (body.length < 4096) body += d;
        });
        res.on('end', () => {
          if (res.statusCode === 200) resolve();
          else reject(new TaildropSendError(`${res.statusCode} ${body.trim()}`, res.statusCode));
        });
      });
      req.on('error', (e) => reject(o.signal?.aborted ? new TaildropSendError('cancelled') : e));
      req.on('response', () => {
        lastProgress = Number.POSITIVE_INFINITY; // the body is out; the answer may take a while (hashing, renaming)
      });
      let lastProgress = performance.now();
      const stallMs = o.stallMs ?? STALL_MS;
      const watchdog = setInterval(() => {
        if (performance.now() - lastProgress < stallMs) return;
        req.destroy(
          new TaildropSendError(`no progress for ${Math.round(stallMs / 1000)} s: the path to the peer is gone`),
        );
      }, 1_000);
      let src: Readable | undefined;
      req.on('close', () => {
        clearInterval(watchdog);
        src?.destroy(); // stops the reads ahead once the request is over, however it ended
      });
      /** n more bytes went out (by either path): progress, and the stall watchdog fed. */
      const progressed = (n: number) => {
        sent += n;
        lastProgress = performance.now();
        report();
      };
      const allOut = () => {
        lastProgress = performance.now() + 100_000; // all sent: allow the peer two minutes to store it and answer
      };
      /** The body from offset on, read from the source and written to the request. */
      const pipeFrom = (offset: number) => {
        if (req.destroyed) return;
        src = Readable.from(readAhead(o.source, offset, SEND_READS_AHEAD), { objectMode: false });
        src.on('data', (chunk: Uint8Array) => progressed(chunk.length));
        src.on('end', allOut);
        src.on('error', (e) => req.destroy(e));
        src.pipe(req);
      };
      const fileFd = o.kernelCopy && !o.connect ? sourceFd(o.source) : undefined;
      if (fileFd === undefined) return pipeFrom(resumedFrom);
      req.flushHeaders();
      bodyOut = sendBodyWithSendfile({
        req,
        fileFd,
        from: resumedFrom,
        end: total,
        addon: typeof o.kernelCopy === 'object' ? o.kernelCopy : undefined,
        onSent: progressed,
      }).then(
        (r) => {
          if (r.kind === 'fallback') pipeFrom(r.at);
          else if (r.kind === 'sent') {
            allOut();
            req.end();
          } else if (!req.destroyed) {
            // Answered before the body was out: the request is never ended, so it is closed once the answer is read.
            const res = (req as typeof req & { res?: IncomingMessage }).res;
            if (!res || res.complete) req.destroy();
            else res.once('end', () => req.destroy());
          }
        },
        (e: Error) => void req.destroy(e),
      );
    });
  }
}

/**
 * sendFile, again when the peer resets the connection: tailscaled does so while it still holds an interrupted
 * upload of the same name (until that one times out). Each attempt asks again for the blocks the peer has, so a
 * retry resumes rather than restarts.
 */
export async function sendFileWithRetry(
  o: SendOptions,
  r: {
    attempts?: number;
    delayMs?: number;
    log?: (line: string) => void;
    /** What does one attempt (default: sendFile on this thread). */
    send?: (o: SendOptions) => Promise<{ total: number; resumedFrom: number }>;
  } = {},
): Promise<{ total: number; resumedFrom: number }> {
  const attempts = r.attempts ?? 3;
  const send = r.send ?? sendFile;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send(o);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const reset =
        code === 'ECONNRESET' ||
        code === 'EPIPE' ||
        code === 'ETIMEDOUT' ||
        /socket hang up/.test((e as Error).message);
      if (!reset || o.signal?.aborted) throw e;
      if (attempt >= attempts) {
        throw new TaildropSendError(
          code === 'ETIMEDOUT'
            ? `the peer did not answer (${attempt} attempts): is it online and reachable?`
            : `the peer kept resetting the connection (${attempt} attempts); it may still be finishing an ` +
                'interrupted upload of this file: try again in a minute',
        );
      }
      r.log?.(`taildrop: ${o.name}: connection reset by the peer, retrying (${attempt}/${attempts})`);
      await new Promise((done) => setTimeout(done, (r.delayMs ?? 2_000) * attempt));
    }
  }
}

/** The receiver's block hashes for our partial: none when it has none or does not do resume; null when it did
 *  not answer at all. */
async function remoteBlocks(
  url: string,
  signal?: AbortSignal,
  connect?: PeerConnector,
): Promise<Array<{ checksum: string; size: number }> | null> {
  let via: Awaited<ReturnType<typeof connectionFor>>;
  try {
    via = await connectionFor(url, connect);
  } catch {
    return null;
  }
  return new Promise((resolve) => {
    const req = request(
      url,
      { method: 'GET', headers: { host: 'peer' }, agent: false, timeout: 10_000, signal, ...via },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return resolve([]);
        }
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          if (text.length < 1 << 24) text += d;
        });
        res.on('end', () => {
          const out: Array<{ checksum: string; size: number }> = [];
          for (const line of text.split('\n')) {
            if (!line.trim()) continue;
            try {
              const r = JSON.parse(line) as { checksum?: unknown; algo?: unknown; size?: unknown };
              const ok = r.algo === 'sha256' && typeof r.checksum === 'string' && typeof r.size === 'number';
              if (!ok || (r.size as number) < 0 || (r.size as number) > BLOCK_SIZE) break;
              out.push({ checksum: r.checksum as string, size: r.size as number });
            } catch {
              break;
            }
          }
          resolve(out);
        });
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

/** How many leading bytes of the file the receiver's blocks already hold. */
async function matchingPrefix(source: ByteSource, blocks: Array<{ checksum: string; size: number }>) {
  let offset = 0;
  for (const b of blocks) {
    if (offset + b.size > source.size) break;
    const bytes = await source.read(offset, b.size);
    if (bytes.length !== b.size) break;
    if (createHash('sha256').update(bytes).digest('hex') !== b.checksum) break;
    offset += b.size;
  }
  return offset;
}
