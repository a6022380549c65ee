// `trellis web`'s HTTP side: the window UI (renderer/dist) for a browser, the app API bridged over a WebSocket
// at /api, and uploads of dropped files at /upload. Every request must name this server in its Host header; the
// page, the API and uploads need the random token that is in the printed URL. Plain HTTP on loopback only; any
// other address needs TLS, so the token never crosses a network in clear text.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ApiBackend, AppSnapshot } from '../../preload/api.ts';
import { Bridge } from './bridge.ts';
import { hostForUrl, isWildcard, RequestGuard } from './guard.ts';
import { checkBrowserCall } from './policy.ts';
import { securityHeaders, sendText, serveStatic } from './static.ts';
import { certificateCovers, isLoopbackHost, type TlsMaterial } from './tls.ts';
import { UploadStore } from './upload.ts';

export interface WebServerOptions {
  backend: ApiBackend;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** 0 = a free port. */
  port?: number;
  /** The built renderer (renderer/dist). */
  staticDir: string;
  /** Where the private upload directory is created; default the OS temp directory. */
  uploadDir?: string;
  /** Largest upload in bytes; default 16 GiB. */
  uploadLimit?: number;
  /** Default: 32 random bytes, base64url. */
  token?: string;
  maxConnections?: number;
  heartbeatMs?: number;
  /** Serve HTTPS with this certificate and accept only its names as Host; required off loopback. */
  tls?: TlsMaterial;
  /** The only folder received files may be saved to (--save-dir); the browser can never name another. */
  saveDir?: string;
}

export interface WebServer {
  /** The page's URL, token included: what the user opens. */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** The private directory uploads go to (removed by close). */
  readonly uploadDir: string;
  close(): Promise<void>;
}

/** How often uploads are checked for cleanup besides each snapshot event. */
const SWEEP_INTERVAL_MS = 15_000;

export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const host = o.host ?? '127.0.0.1';
  if (!o.tls && !isLoopbackHost(host)) {
    throw new Error(`${host || 'every address'} is reachable from other machines; it is served only with TLS`);
  }
  const token = o.token ?? randomBytes(32).toString('base64url');
  const uploads = await UploadStore.create({ parent: o.uploadDir, limit: o.uploadLimit });
  const bridge = new Bridge({
    backend: o.backend,
    maxConnections: o.maxConnections,
    heartbeatMs: o.heartbeatMs,
    beforeCall: (name, arg) =>
      checkBrowserCall({ isUpload: (p) => uploads.isUpload(p), saveDir: o.saveDir }, name, arg),
    afterCall: (name, arg) => {
      if (name === 'sendFiles') uploads.handOver((arg as { paths: string[] }).paths);
    },
  });
  let guard: RequestGuard | undefined;

  const onRequest: RequestListener = (req, res) => {
    if (!guard) return sendText(res, 503, 'Starting.', {});
    handleRequest(req, res, guard, o.staticDir, uploads).catch(() => res.destroy());
  };
  const server: Server = o.tls
    ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, onRequest)
    : createServer(onRequest);
  // Uploads may take long; idle ones are cut by the upload's own socket timeout instead.
  server.requestTimeout = 0;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refusal = guard ? upgradeRefusal(req, guard, bridge) : '503 Service Unavailable';
    if (refusal) {
      socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    bridge.accept(req, socket, head);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    bridge.close();
    await uploads.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE')
      throw new Error(`port ${o.port} on ${host} is already in use; pick another with --port`);
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  guard = new RequestGuard({ token, host, port, tlsNames: o.tls?.names });

  const sweep = (snapshot: AppSnapshot) => void uploads.sweep(snapshot.transfers).catch(() => {});
  const offSnapshots = o.backend.onEvent((m) => {
    if (m.event === 'snapshot') sweep(m.payload);
  });
  const sweepTimer = setInterval(() => {
    if (uploads.paths.length > 0) void o.backend.call('getSnapshot', undefined).then(sweep, () => {});
  }, SWEEP_INTERVAL_MS);
  sweepTimer.unref();

  const urlHost = o.tls ? nameForUrl(o.tls.names, host) : isWildcard(host) ? '127.0.0.1' : hostForUrl(host);
  let closing: Promise<void> | undefined;
  return {
    url: `${o.tls ? 'https' : 'http'}://${urlHost}:${port}/?token=${token}`,
    port,
    token,
    uploadDir: uploads.dir,
    close: () => {
      closing ??= (async () => {
        clearInterval(sweepTimer);
        offSnapshots();
        bridge.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await uploads.close();
      })();
      return closing;
    },
  };
}

async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  guard: RequestGuard,
  staticDir: string,
  uploads: UploadStore,
): Promise<void> {
  if (!guard.hostAllowed(req)) return sendText(res, 403, 'Forbidden: unexpected Host header.', {});
  const headers = securityHeaders(req.headers.host as string, guard.secure);
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://trellis.invalid');
  } catch {
    return sendText(res, 400, 'Bad request.', headers);
  }
  const tokenOk = guard.tokenMatches(url.searchParams.get('token'));
  if (url.pathname === '/upload') {
    if (!tokenOk) return sendText(res, 403, 'Forbidden: open the URL trellis web printed.', headers);
    if (req.method !== 'PUT') return sendText(res, 405, 'Use PUT.', { ...headers, Allow: 'PUT' });
    return uploads.receive(req, res, url.searchParams.get('name'), headers);
  }
  if (url.pathname === '/api') return sendText(res, 426, 'This is a WebSocket endpoint.', headers);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return sendText(res, 405, 'Method not allowed.', { ...headers, Allow: 'GET, HEAD' });
  }
  // The bundle is public; the page itself is only shown to someone holding the URL with the token.
  if (url.pathname === '/' && !tokenOk) {
    return sendText(res, 403, 'Forbidden: open the URL trellis web printed (it carries a token).', headers);
  }
  return serveStatic(req, res, staticDir, url.pathname, headers);
}

/** The status line refusing a WebSocket upgrade, or undefined to accept it. */
function upgradeRefusal(req: IncomingMessage, guard: RequestGuard, bridge: Bridge): string | undefined {
  if (!guard.hostAllowed(req) || !guard.originAllowed(req)) return '403 Forbidden';
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://trellis.invalid');
  } catch {
    return '400 Bad Request';
  }
  if (url.pathname !== '/api') return '404 Not Found';
  if (!guard.tokenMatches(url.searchParams.get('token'))) return '403 Forbidden';
  if (!bridge.hasRoom()) return '503 Service Unavailable';
  return undefined;
}

/** The name a browser should use: the bound address when the certificate names it, else its first plain name. */
function nameForUrl(names: readonly string[], host: string): string {
  if (!isWildcard(host) && certificateCovers(names, host)) return hostForUrl(host);
  return hostForUrl(names.find((n) => !n.startsWith('*.')) ?? names[0]);
}
