// One connection to the control server: Noise + HTTP/2, with the two calls Trellis makes on it —
// register, and the map (a long-lived stream of length-prefixed MapResponses).
import type http2 from 'node:http2';
import { ControlError, dialNoise, fetchServerKey, openHttp2 } from './dial.ts';
import type { NoiseConn } from './noise-conn.ts';
import type { MapRequest, MapResponse, RegisterRequest, RegisterResponse } from './tailcfg.ts';

const MAX_REGISTER_BODY = 1 << 20;
/** A full map of 10,000 peers is ~20 MB of JSON; anything far beyond that is hostile. */
export const MAX_MAP_MESSAGE = 128 << 20;

export class HttpStatusError extends ControlError {
  constructor(
    readonly status: number,
    readonly body: string,
    path: string,
  ) {
    super('protocol', `control server answered ${status} to ${path}${body ? `: ${body.trim().slice(0, 200)}` : ''}`);
  }
}

export class ControlSession {
  private constructor(
    private readonly conn: NoiseConn,
    private readonly h2: http2.ClientHttp2Session,
  ) {}

  static async open(serverUrl: string, machinePrivate: Uint8Array, timeoutMs = 15_000): Promise<ControlSession> {
    const serverPublic = await fetchServerKey(serverUrl, timeoutMs);
    const conn = await dialNoise({ serverUrl, machinePrivate, serverPublic, timeoutMs });
    const h2 = openHttp2(conn, serverUrl);
    h2.on('error', () => {}); // surfaced through the requests that fail
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new ControlError('timeout', `no HTTP/2 settings within ${timeoutMs} ms`)),
          timeoutMs,
        );
        h2.once('remoteSettings', () => {
          clearTimeout(t);
          resolve();
        });
        h2.once('error', (e) => {
          clearTimeout(t);
          reject(new ControlError('protocol', `HTTP/2 over Noise failed: ${e.message}`, { cause: e }));
        });
        h2.once('close', () => {
          clearTimeout(t);
          reject(new ControlError('protocol', 'control connection closed before HTTP/2 started'));
        });
      });
    } catch (e) {
      h2.destroy();
      conn.destroy();
      throw e;
    }
    return new ControlSession(conn, h2);
  }

  get closed(): boolean {
    return this.h2.closed || this.h2.destroyed;
  }

  onClose(cb: () => void): void {
    this.h2.once('close', cb);
  }

  close(): void {
    this.h2.destroy();
    this.conn.destroy();
  }

  private request(path: string, body: unknown): http2.ClientHttp2Stream {
    const stream = this.h2.request({ ':method': 'POST', ':path': path });
    stream.end(JSON.stringify(body));
    return stream;
  }

  /** POST /machine/register. Followup requests block server-side until an admin approves. */
  register(req: RegisterRequest, timeoutMs: number, signal?: AbortSignal): Promise<RegisterResponse> {
    return new Promise((resolve, reject) => {
      const stream = this.request('/machine/register', req);
      let status = 0;
      const chunks: Buffer[] = [];
      let size = 0;
      const timer = setTimeout(() => stream.close(), timeoutMs);
      const abort = () => stream.close();
      signal?.addEventListener('abort', abort, { once: true });
      const finish = (err?: Error, value?: RegisterResponse) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        if (err) reject(err);
        else resolve(value as RegisterResponse);
      };
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_REGISTER_BODY) stream.close();
        else chunks.push(d);
      });
      stream.on('error', (e) => finish(new ControlError('unreachable', `register failed: ${e.message}`, { cause: e })));
      stream.on('close', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (signal?.aborted) return finish(new ControlError('timeout', 'register cancelled'));
        if (status === 0) return finish(new ControlError('timeout', `no register answer within ${timeoutMs} ms`));
        if (status !== 200) return finish(new HttpStatusError(status, body, '/machine/register'));
        try {
          const parsed = JSON.parse(body) as unknown;
          if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
          finish(undefined, parsed as RegisterResponse);
        } catch {
          finish(new ControlError('protocol', `register answer is not JSON: ${body.slice(0, 100)}`));
        }
      });
    });
  }

  /**
   * POST /machine/map with Stream:true. Calls onMessage for each MapResponse; resolves when the stream ends
   * (server closed it or cancel() was called), rejects on a protocol error.
   */
  streamMap(req: MapRequest, onMessage: (m: MapResponse) => void): { done: Promise<void>; cancel(): void } {
    const stream = this.request('/machine/map', req);
    const done = new Promise<void>((resolve, reject) => {
      let status = 0;
      let buf: Buffer = Buffer.alloc(0);
      let failed = false;
      const fail = (e: Error) => {
        if (failed) return;
        failed = true;
        stream.close();
        reject(e);
      };
      const errorBody: Buffer[] = [];
      // DATA can be emitted before the 'response' event when both arrive in one read: hold it until the
      // status is known, or the first part of the map is lost.
      const early: Buffer[] = [];
      stream.on('response', (h) => {
        status = Number(h[':status']);
        for (const d of early.splice(0)) onData(d);
      });
      stream.on('data', (d: Buffer) => {
        if (status === 0) early.push(d);
        else onData(d);
      });
      const onData = (d: Buffer): void => {
        if (failed) return;
        if (status !== 200) {
          errorBody.push(d);
          return;
        }
        buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
        for (let guard = 0; guard < 100_000 && buf.length >= 4 && !failed; guard++) {
          const len = buf.readUInt32LE(0);
          if (len > MAX_MAP_MESSAGE) {
            fail(new ControlError('protocol', `map message of ${len} bytes is too large`));
            return;
          }
          if (buf.length < 4 + len) break;
          const raw = buf.subarray(4, 4 + len);
          buf = buf.subarray(4 + len);
          let msg: unknown;
          try {
            msg = JSON.parse(raw.toString('utf8'));
          } catch {
            fail(new ControlError('protocol', 'map message is not JSON'));
            return;
          }
          if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
            fail(new ControlError('protocol', 'map message is not a JSON object'));
            return;
          }
          try {
            onMessage(msg as MapResponse);
          } catch (e) {
            fail(e instanceof Error ? e : new Error(String(e)));
            return;
          }
        }
      };
      stream.on('error', (e) => fail(new ControlError('unreachable', `map stream failed: ${e.message}`, { cause: e })));
      stream.on('close', () => {
        if (failed) return;
        if (status !== 0 && status !== 200) {
          return fail(new HttpStatusError(status, Buffer.concat(errorBody).toString('utf8'), '/machine/map'));
        }
        resolve();
      });
    });
    return { done, cancel: () => stream.close() };
  }

  /** A one-shot "lite" map request carrying new endpoints or Hostinfo (Headscale answers 200, empty). */
  async updateNode(req: MapRequest, timeoutMs = 15_000): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const stream = this.request('/machine/map', { ...req, Stream: false, OmitPeers: true });
      let status = 0;
      const timer = setTimeout(() => stream.close(), timeoutMs);
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.resume();
      stream.on('error', (e) => reject(new ControlError('unreachable', e.message, { cause: e })));
      stream.on('close', () => {
        clearTimeout(timer);
        if (status === 200) resolve();
        else reject(new HttpStatusError(status, '', '/machine/map (update)'));
      });
    });
  }
}
