// `trellis web`'s server against a small fake backend: who may connect (token, Host, Origin), the bridge's calls
// and events, the static files, and uploads. The end-to-end test drives the real daemon through a browser.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { startWebServer, type WebServer } from '../../main/web/server.ts';
import {
  type ApiArg,
  type ApiBackend,
  type ApiCallName,
  ApiError,
  type ApiEventMessage,
  type ApiResult,
  type BridgeServerMessage,
} from '../../preload/api.ts';

class FakeBackend implements ApiBackend {
  readonly calls: { name: ApiCallName; arg: unknown }[] = [];
  readonly listeners = new Set<(m: ApiEventMessage) => void>();

  async call<K extends ApiCallName>(name: K, arg: ApiArg<K>): Promise<ApiResult<K>> {
    this.calls.push({ name, arg });
    switch (name) {
      case 'getSnapshot':
        return { transfers: [] } as unknown as ApiResult<K>;
      case 'setPrefs':
        return arg as ApiResult<K>;
      case 'connect':
        throw new ApiError('not-connected', 'log in first');
      case 'logout':
        throw new Error('something broke');
      default:
        return undefined as ApiResult<K>;
    }
  }

  onEvent(listener: (m: ApiEventMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(m: ApiEventMessage): void {
    for (const l of this.listeners) l(m);
  }
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function http(
  port: number,
  path: string,
  o: { method?: string; host?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? 'GET',
        headers: { host: o.host ?? `127.0.0.1:${port}`, ...o.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Opens a socket; rejects with the HTTP status when the server refuses the upgrade. */
function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<BridgeServerMessage> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(JSON.parse(data.toString()))));
}

function closeCode(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

async function closeAll(...sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map((ws) => {
      const closed = closeCode(ws);
      ws.close();
      return closed;
    }),
  );
}

async function callOver(ws: WebSocket, message: unknown): Promise<BridgeServerMessage> {
  const reply = nextMessage(ws);
  ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  return reply;
}

const root = mkdtempSync(join(tmpdir(), 'trellis-web-test-'));
const staticDir = join(root, 'dist');
const backend = new FakeBackend();
let web: WebServer;
let apiUrl: string;

before(async () => {
  mkdirSync(join(staticDir, 'assets'), { recursive: true });
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Trellis</title>');
  writeFileSync(join(staticDir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(staticDir, 'assets', 'app.css'), 'body{}');
  writeFileSync(join(root, 'secret.txt'), 'secret');
  symlinkSync(join(root, 'secret.txt'), join(staticDir, 'assets', 'link.txt'));
  web = await startWebServer({ backend, staticDir, uploadDir: root, uploadLimit: 8 * 1024 * 1024, maxConnections: 4 });
  apiUrl = `ws://127.0.0.1:${web.port}/api?token=${web.token}`;
});

after(async () => {
  await web.close();
  rmSync(root, { recursive: true, force: true });
});

test('the printed URL carries a 43-character base64url token', () => {
  assert.match(web.url, new RegExp(`^http://127\\.0\\.0\\.1:${web.port}/\\?token=[A-Za-z0-9_-]{43}$`));
  assert.equal(statSync(web.uploadDir).mode & 0o777, 0o700);
});

test('the page needs the token; the public bundle does not', async () => {
  assert.equal((await http(web.port, '/')).status, 403);
  assert.equal((await http(web.port, '/?token=wrong')).status, 403);
  assert.equal((await http(web.port, `/?token=${web.token.slice(0, -1)}x`)).status, 403);
  const page = await http(web.port, `/?token=${web.token}`);
  assert.equal(page.status, 200);
  assert.equal(page.body.toString(), '<!doctype html><title>Trellis</title>');
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(page.headers['cache-control'], 'no-store');
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal(page.headers['referrer-policy'], 'no-referrer');
  const csp = String(page.headers['content-security-policy']);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${web.port}`));
  assert.match(csp, /img-src 'self' data:/);
  assert.match(csp, /style-src 'self' 'unsafe-inline'/);
  const js = await http(web.port, '/assets/app.js');
  assert.equal(js.status, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal((await http(web.port, '/assets/app.css')).headers['content-type'], 'text/css; charset=utf-8');
  assert.equal((await http(web.port, '/index.html')).status, 200);
  assert.equal((await http(web.port, '/assets/missing.js')).status, 404);
});

test('a foreign Host header is refused (DNS rebinding)', async () => {
  const path = `/?token=${web.token}`;
  assert.equal((await http(web.port, path, { host: `evil.example:${web.port}` })).status, 403);
  assert.equal((await http(web.port, path, { host: '127.0.0.1:1' })).status, 403);
  assert.equal((await http(web.port, '/assets/app.js', { host: 'evil.example' })).status, 403);
  assert.equal((await http(web.port, path, { host: `localhost:${web.port}` })).status, 200);
});

test('no path leaves the static directory', async () => {
  for (const path of [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/..%2fsecret.txt',
    '/assets/..%2f..%2fsecret.txt',
    '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/..%5csecret.txt',
    '/assets/link.txt',
    '/%00',
    '/%E0%A4%A',
    '/assets',
  ]) {
    const r = await http(web.port, path);
    assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
    assert.ok(!r.body.toString().includes('secret'), path);
  }
});

test('the WebSocket needs the token, this Host and this Origin', async () => {
  const port = web.port;
  await assert.rejects(connect(`ws://127.0.0.1:${port}/api`), /status 403/);
  await assert.rejects(connect(`ws://127.0.0.1:${port}/api?token=nope`), /status 403/);
  await assert.rejects(connect(apiUrl, { origin: 'http://evil.example' }), /status 403/);
  await assert.rejects(connect(apiUrl, { origin: `http://127.0.0.1:${port + 1}` }), /status 403/);
  await assert.rejects(connect(apiUrl, { host: `evil.example:${port}` }), /status 403/);
  await assert.rejects(connect(`ws://127.0.0.1:${port}/other?token=${web.token}`), /status 404/);
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
    await closeAll(await connect(apiUrl, { origin }));
  }
});

test('calls round-trip; errors come back as values with their code', async () => {
  const ws = await connect(apiUrl, { origin: `http://127.0.0.1:${web.port}` });
  const prefs = { hostname: 'box' };
  assert.deepEqual(await callOver(ws, { type: 'call', id: 1, name: 'setPrefs', arg: prefs }), {
    type: 'reply',
    id: 1,
    outcome: { ok: true, result: prefs },
  });
  assert.deepEqual(await callOver(ws, { type: 'call', id: 2, name: 'connect' }), {
    type: 'reply',
    id: 2,
    outcome: { ok: false, error: { code: 'not-connected', message: 'log in first' } },
  });
  assert.deepEqual(await callOver(ws, { type: 'call', id: 3, name: 'logout' }), {
    type: 'reply',
    id: 3,
    outcome: { ok: false, error: { code: 'internal', message: 'something broke' } },
  });
  await closeAll(ws);
});

test('malformed messages get bad-request when they carry an id, else the socket is closed', async () => {
  const ws = await connect(apiUrl);
  const badRequest = async (message: unknown, id: number) => {
    const r = await callOver(ws, message);
    assert.equal(r.type, 'reply');
    assert.equal(r.type === 'reply' && r.id, id);
    assert.equal(r.type === 'reply' && !r.outcome.ok && r.outcome.error.code, 'bad-request');
  };
  const before = backend.calls.length;
  await badRequest({ type: 'call', id: 1, name: 'noSuchCall' }, 1);
  await badRequest({ type: 'call', id: 2, name: 'toString' }, 2);
  await badRequest({ type: 'call', id: 3, name: 'connect', extra: true }, 3);
  await badRequest({ type: 'reply', id: 4, name: 'connect' }, 4);
  assert.equal(backend.calls.length, before, 'nothing reached the backend');
  for (const message of ['not json', '[1]', '{"type":"call","id":1.5,"name":"connect"}', 'null']) {
    const s = await connect(apiUrl);
    const closed = closeCode(s);
    s.send(message);
    assert.equal(await closed, 1008, message);
  }
  const binary = await connect(apiUrl);
  const closed = closeCode(binary);
  binary.send(Buffer.from([1, 2, 3]));
  assert.equal(await closed, 1008);
  // The server is still fine.
  const r = await callOver(ws, { type: 'call', id: 5, name: 'disconnect' });
  assert.deepEqual(r, { type: 'reply', id: 5, outcome: { ok: true } });
  await closeAll(ws);
});

test('desktop-only calls are refused over the bridge', async () => {
  const ws = await connect(apiUrl);
  const before = backend.calls.length;
  let id = 0;
  for (const name of ['openReceived', 'revealReceived', 'chooseFolder', 'copyText', 'openExternal']) {
    const r = await callOver(ws, { type: 'call', id: ++id, name, arg: '/etc/passwd' });
    assert.deepEqual(r, {
      type: 'reply',
      id,
      outcome: { ok: false, error: { code: 'unsupported', message: 'not available in the browser' } },
    });
  }
  assert.equal(backend.calls.length, before);
  await closeAll(ws);
});

test('events reach every socket', async () => {
  const a = await connect(apiUrl);
  const b = await connect(apiUrl);
  const got = Promise.all([nextMessage(a), nextMessage(b)]);
  backend.emit({ event: 'notice', payload: { level: 'info', message: 'hello' } });
  for (const m of await got)
    assert.deepEqual(m, { type: 'event', event: 'notice', payload: { level: 'info', message: 'hello' } });
  await closeAll(a, b);
});

test('connections past the cap are refused', async () => {
  const open = await Promise.all([1, 2, 3, 4].map(() => connect(apiUrl)));
  await assert.rejects(connect(apiUrl), /status 503/);
  await closeAll(...open);
});

test('oversized messages close the socket', async () => {
  const ws = await connect(apiUrl);
  const closed = closeCode(ws);
  ws.send(JSON.stringify({ type: 'call', id: 1, name: 'setPrefs', arg: { hostname: 'x'.repeat(1100 * 1024) } }));
  assert.equal(await closed, 1009);
});

test('a socket that stops answering pings is dropped; a live one stays', async () => {
  const quick = await startWebServer({ backend, staticDir, uploadDir: root, heartbeatMs: 50 });
  try {
    const live = await connect(`ws://127.0.0.1:${quick.port}/api?token=${quick.token}`);
    // A raw client completes the handshake, then reads but never answers (no pong).
    const dead = netConnect(quick.port, '127.0.0.1');
    dead.resume();
    const deadClosed = new Promise<number>((resolve) => {
      const start = Date.now();
      dead.on('close', () => resolve(Date.now() - start));
    });
    dead.on('error', () => {});
    dead.write(
      `GET /api?token=${quick.token} HTTP/1.1\r\nHost: 127.0.0.1:${quick.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
        'Sec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.ok((await deadClosed) < 2000);
    assert.equal(live.readyState, WebSocket.OPEN);
    await closeAll(live);
  } finally {
    await quick.close();
  }
});
