// Reaching the control server: GET /key for its Noise key, then POST /ts2021 with the Noise initiation
// in a header, the 101 upgrade, the handshake response, and HTTP/2 (prior knowledge) over the Noise stream.
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import { keyFromText } from '../crypto/key-text.ts';
import { bypassCreateConnection } from '../routes/bypass-socket.ts';
import { RESPONSE_LEN, startClientHandshake } from './noise.ts';
import { NoiseConn } from './noise-conn.ts';

/** The capability version we speak (tailscale v1.90's), sent in /key, the Noise header, register and map. */
export const CAPABILITY_VERSION = 130;

export type ControlErrorKind = 'unreachable' | 'protocol' | 'timeout' | 'refused';

export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(
    readonly kind: ControlErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function baseUrl(serverUrl: string): URL {
  let u: URL;
  try {
    u = new URL(serverUrl);
  } catch {
    throw new ControlError('protocol', `not a URL: ${JSON.stringify(serverUrl)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ControlError('protocol', `control URL must be http:// or https://, got ${u.protocol}`);
  }
  return u;
}

/** GET on a socket that bypasses the tunnel's routes (fetch cannot be given one); status and at most 64 KiB. */
function getBypassing(u: URL, timeoutMs: number): Promise<{ status: number; body: string }> {
  const tls = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request(u, {
      method: 'GET',
      createConnection: bypassCreateConnection(tls) as unknown as http.RequestOptions['createConnection'],
      timeout: timeoutMs,
    });
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error('timed out'), { name: 'TimeoutError' })),
      timeoutMs,
    );
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 65536) body += d;
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: body.slice(0, 65536) });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { name: 'TimeoutError' })));
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

export async function fetchServerKey(serverUrl: string, timeoutMs = 10_000): Promise<Uint8Array> {
  const u = new URL(`key?v=${CAPABILITY_VERSION}`, baseUrl(serverUrl).href.replace(/\/?$/, '/'));
  let res: { status: number; body: string };
  try {
    res = await getBypassing(u, timeoutMs);
  } catch (e) {
    const timedOut = (e as Error).name === 'TimeoutError';
    throw new ControlError(
      timedOut ? 'timeout' : 'unreachable',
      timedOut
        ? `control server ${u.origin} did not answer within ${timeoutMs} ms`
        : `cannot reach control server ${u.origin}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (res.status !== 200) {
    throw new ControlError(
      'protocol',
      `control server answered ${res.status} to GET /key: is ${u.origin} a Tailscale control server?`,
    );
  }
  const body = res.body;
  try {
    return keyFromText('mkey', (JSON.parse(body) as { publicKey?: unknown }).publicKey);
  } catch {
    throw new ControlError('protocol', `control server's /key answer is not a Noise key: ${body.slice(0, 100)}`);
  }
}

/** Reads exactly n bytes from a socket, starting with what the HTTP parser already consumed. */
function readExactly(
  socket: Socket,
  head: Buffer,
  n: number,
  timeoutMs: number,
): Promise<{ bytes: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = head;
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      if (err) reject(err);
      else {
        socket.pause();
        resolve({ bytes: buf.subarray(0, n), rest: buf.subarray(n) });
      }
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) done();
    };
    const onEnd = () =>
      done(
        new ControlError(
          'refused',
          'control server closed the connection during the Noise handshake (wrong server key, or an unsupported version)',
        ),
      );
    const timer = setTimeout(
      () => done(new ControlError('timeout', `no Noise handshake response within ${timeoutMs} ms`)),
      timeoutMs,
    );
    if (buf.length >= n) return done();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.resume();
  });
}

export interface DialOptions {
  serverUrl: string;
  machinePrivate: Uint8Array;
  serverPublic: Uint8Array;
  timeoutMs?: number;
}

export async function dialNoise(o: DialOptions): Promise<NoiseConn> {
  const u = baseUrl(o.serverUrl);
  const timeoutMs = o.timeoutMs ?? 15_000;
  const hs = startClientHandshake({
    version: CAPABILITY_VERSION,
    machinePrivate: o.machinePrivate,
    serverPublic: o.serverPublic,
  });
  const mod = u.protocol === 'https:' ? https : http;
  const { socket, head } = await new Promise<{ socket: Socket; head: Buffer }>((resolve, reject) => {
    const req = mod.request({
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port || (u.protocol === 'https:' ? 443 : 80),
      method: 'POST',
      path: `${u.pathname.replace(/\/$/, '')}/ts2021`,
      headers: {
        Upgrade: 'tailscale-control-protocol',
        Connection: 'upgrade',
        'X-Tailscale-Handshake': Buffer.from(hs.initiation).toString('base64'),
        'Content-Length': '0',
      },
      timeout: timeoutMs,
      createConnection: bypassCreateConnection(
        u.protocol === 'https:',
      ) as unknown as http.RequestOptions['createConnection'],
    });
    req.on('upgrade', (res, sock, h) => {
      if (String(res.headers.upgrade).toLowerCase() !== 'tailscale-control-protocol') {
        sock.destroy();
        reject(
          new ControlError(
            'protocol',
            `control server upgraded to ${res.headers.upgrade}, not tailscale-control-protocol`,
          ),
        );
        return;
      }
      resolve({ socket: sock, head: h });
    });
    req.on('response', (res) => {
      res.resume();
      reject(
        new ControlError(
          'protocol',
          `control server answered ${res.statusCode} to the ts2021 upgrade: is it a Tailscale control server?`,
        ),
      );
    });
    req.on('timeout', () =>
      req.destroy(new ControlError('timeout', `control server did not answer within ${timeoutMs} ms`)),
    );
    req.on('error', (e) =>
      reject(
        e instanceof ControlError
          ? e
          : new ControlError('unreachable', `cannot reach control server ${u.origin}: ${e.message}`, { cause: e }),
      ),
    );
    req.end();
  });
  try {
    const { bytes, rest } = await readExactly(socket, head, RESPONSE_LEN, timeoutMs);
    const keys = hs.finish(bytes);
    return new NoiseConn(socket, keys.sendKey, keys.receiveKey, rest);
  } catch (e) {
    socket.destroy();
    if (e instanceof ControlError) throw e;
    throw new ControlError('protocol', (e as Error).message, { cause: e });
  }
}

/** HTTP/2 with prior knowledge over the Noise stream. Request paths are what matter; the authority is cosmetic. */
export function openHttp2(conn: NoiseConn, serverUrl: string): http2.ClientHttp2Session {
  const u = baseUrl(serverUrl);
  return http2.connect(`http://${u.host}`, {
    createConnection: () => conn as unknown as Socket,
    settings: { enablePush: false },
  });
}
