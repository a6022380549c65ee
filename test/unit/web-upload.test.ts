// Uploads of files dropped on the `trellis web` page: streamed to a private directory under the user's file
// name, hostile names and oversize bodies refused with nothing written, aborted uploads removed, and uploaded
// files removed once their sends are over.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { startWebServer, type WebServer } from '../../main/web/server.ts';
import { UploadStore } from '../../main/web/upload.ts';
import type {
  ApiArg,
  ApiBackend,
  ApiCallName,
  ApiEventMessage,
  ApiResult,
  BridgeServerMessage,
  Transfer,
} from '../../preload/api.ts';

class FakeBackend implements ApiBackend {
  readonly sent: string[][] = [];
  readonly listeners = new Set<(m: ApiEventMessage) => void>();

  async call<K extends ApiCallName>(name: K, arg: ApiArg<K>): Promise<ApiResult<K>> {
    if (name === 'sendFiles') this.sent.push((arg as { paths: string[] }).paths);
    if (name === 'getSnapshot') return { transfers: [] } as unknown as ApiResult<K>;
    return [] as unknown as ApiResult<K>;
  }

  onEvent(listener: (m: ApiEventMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

interface Reply {
  status: number;
  json: Record<string, unknown>;
}

/** PUT with the body written in chunks; abortAfter cuts the connection after that many chunks. */
function put(
  port: number,
  path: string,
  chunks: Buffer[],
  o: { contentLength?: number; abortAfter?: number } = {},
): Promise<Reply | 'aborted'> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: `127.0.0.1:${port}` };
    if (o.contentLength !== undefined) headers['content-length'] = String(o.contentLength);
    const req = request({ host: '127.0.0.1', port, path, method: 'PUT', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString();
        resolve({ status: res.statusCode ?? 0, json: text.startsWith('{') ? JSON.parse(text) : { text } });
      });
    });
    // A refused body may be cut by the server while we still write; the answer came first.
    req.on('error', (e) => (o.abortAfter !== undefined ? resolve('aborted') : reject(e)));
    const write = async () => {
      for (const [i, chunk] of chunks.entries()) {
        if (i === o.abortAfter) {
          await new Promise((r) => setTimeout(r, 100));
          req.destroy();
          resolve('aborted');
          return;
        }
        if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    };
    write().catch(() => {});
  });
}

function uploadPath(web: WebServer, name: string | null, token = web.token): string {
  const q = new URLSearchParams({ token });
  if (name !== null) q.set('name', name);
  return `/upload?${q}`;
}

/** Every file under dir, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name));
}

const root = mkdtempSync(join(tmpdir(), 'trellis-web-upload-test-'));
const backend = new FakeBackend();
let web: WebServer;

before(async () => {
  web = await startWebServer({ backend, staticDir: join(root, 'no-dist'), uploadDir: root, uploadLimit: 8 << 20 });
});

after(async () => {
  await web.close();
  rmSync(root, { recursive: true, force: true });
});

test('a 5 MB upload lands intact, 0600, under its own name in a private directory', async () => {
  const body = randomBytes(5 << 20);
  const chunks = Array.from({ length: 20 }, (_, i) => body.subarray(i << 18, (i + 1) << 18));
  const name = 'Résumé 2024 (final).pdf';
  const r = await put(web.port, uploadPath(web, name), chunks);
  assert.notEqual(r, 'aborted');
  if (r === 'aborted') return;
  assert.equal(r.status, 201);
  const path = String(r.json.path);
  assert.equal(basename(path), name);
  assert.equal(dirname(dirname(path)), web.uploadDir);
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(digest(readFileSync(path)), digest(body));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(dirname(path)).mode & 0o777, 0o700);
});

test('hostile file names are refused and nothing is written', async () => {
  const before = filesUnder(web.uploadDir).length;
  const slots = readdirSync(web.uploadDir).length;
  for (const name of [
    '',
    '.',
    '..',
    'a/b',
    '../x',
    '/etc/passwd',
    'a\\b',
    'a\u0000b',
    'a\nb',
    'x'.repeat(256),
    'é'.repeat(128),
    null,
  ]) {
    const r = await put(web.port, uploadPath(web, name), [Buffer.from('data')]);
    assert.notEqual(r, 'aborted');
    if (r === 'aborted') return;
    assert.equal(r.status, 400, JSON.stringify(name));
    assert.equal(r.json.code, 'bad-request');
    assert.equal(typeof r.json.message, 'string');
  }
  assert.equal(filesUnder(web.uploadDir).length, before);
  assert.equal(readdirSync(web.uploadDir).length, slots);
});

test('uploads need the token and PUT', async () => {
  const r = await put(web.port, uploadPath(web, 'a.txt', 'wrong'), [Buffer.from('x')]);
  assert.equal(r !== 'aborted' && r.status, 403);
  const chunks = [Buffer.from('x')];
  const missing = await put(web.port, `/upload?name=a.txt`, chunks);
  assert.equal(missing !== 'aborted' && missing.status, 403);
  const get = await fetch(`http://127.0.0.1:${web.port}${uploadPath(web, 'a.txt')}`);
  assert.equal(get.status, 405);
});

test('bodies over the limit get 413, with or without Content-Length, and leave nothing', async () => {
  const slots = readdirSync(web.uploadDir).length;
  const declared = await put(web.port, uploadPath(web, 'big.bin'), [], { contentLength: 9 << 20 });
  assert.equal(declared !== 'aborted' && declared.status, 413);
  assert.equal(declared !== 'aborted' && declared.json.code, 'refused');
  assert.equal(
    declared !== 'aborted' && declared.json.message,
    'big.bin is larger than the 8.00 MiB this page may upload.',
  );
  const chunks = Array.from({ length: 40 }, () => Buffer.alloc(256 << 10));
  const streamed = await put(web.port, uploadPath(web, 'big.bin'), chunks, { abortAfter: 1000 });
  if (streamed !== 'aborted') assert.equal(streamed.status, 413);
  await waitFor(() => readdirSync(web.uploadDir).length === slots);
});

test('an aborted upload leaves no file behind', async () => {
  const slots = readdirSync(web.uploadDir).length;
  const chunks = Array.from({ length: 24 }, () => Buffer.alloc(256 << 10, 7));
  const r = await put(web.port, uploadPath(web, 'cut.bin'), chunks, { contentLength: 6 << 20, abortAfter: 4 });
  assert.equal(r, 'aborted');
  await waitFor(() => readdirSync(web.uploadDir).length === slots);
  assert.ok(!filesUnder(web.uploadDir).some((f) => basename(f) === 'cut.bin'));
});

test('sendFiles over the bridge takes only uploaded paths', async () => {
  const r = await put(web.port, uploadPath(web, 'ok.txt'), [Buffer.from('hello')]);
  assert.ok(r !== 'aborted' && r.status === 201);
  const uploaded = String(r.json.path);
  const ws = new WebSocket(`ws://127.0.0.1:${web.port}/api?token=${web.token}`);
  await new Promise((resolve) => ws.once('open', resolve));
  const call = (id: number, paths: string[]) =>
    new Promise<BridgeServerMessage>((resolve) => {
      ws.once('message', (d) => resolve(JSON.parse(d.toString())));
      ws.send(JSON.stringify({ type: 'call', id, name: 'sendFiles', arg: { peer: 'box', paths } }));
    });
  const refused = await call(1, ['/etc/passwd']);
  assert.equal(refused.type === 'reply' && !refused.outcome.ok && refused.outcome.error.code, 'refused');
  const mixed = await call(2, [uploaded, join(dirname(uploaded), '..', 'x')]);
  assert.equal(mixed.type === 'reply' && mixed.outcome.ok, false);
  const ok = await call(3, [uploaded]);
  assert.equal(ok.type === 'reply' && ok.outcome.ok, true);
  assert.deepEqual(backend.sent, [[uploaded]]);
  ws.close();
});

test('uploads are removed once their sends are over, or when abandoned', async () => {
  const store = await UploadStore.create({ parent: root });
  const server = createServer(
    (req, res) => void store.receive(req, res, new URL(req.url ?? '/', 'http://x').searchParams.get('name'), {}),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const up = async (name: string) => {
    const r = await put(port, `/?name=${name}`, [Buffer.from(name)]);
    assert.ok(r !== 'aborted' && r.status === 201);
    return String(r.json.path);
  };
  const sent = await up('sent.txt');
  const kept = await up('kept.txt');
  const t0 = Date.now();
  store.handOver([sent], t0);
  const transfer = (state: Transfer['state']) => ({ state }) as Transfer;
  await store.sweep([transfer('sending')], t0 + 60_000);
  assert.ok(existsSync(sent), 'kept while a send runs');
  await store.sweep([transfer('done')], t0 + 5_000);
  assert.ok(existsSync(sent), 'kept during the grace time');
  await store.sweep([transfer('done'), transfer('failed')], t0 + 11_000);
  assert.ok(!existsSync(sent) && !existsSync(dirname(sent)), 'removed with its directory');
  assert.ok(existsSync(kept), 'a file not yet sent stays');
  await store.sweep([], t0 + 3600_000 + 1);
  assert.ok(!existsSync(kept), 'an abandoned upload goes after an hour');
  await up('left.txt');
  server.close();
  await store.close();
  assert.ok(!existsSync(store.dir));
});

test('close removes the upload directory; a missing build gets a hint page', async () => {
  const other = await startWebServer({ backend, staticDir: join(root, 'no-dist'), uploadDir: root });
  const r = await put(other.port, uploadPath(other, 'x.txt'), [Buffer.from('x')]);
  assert.ok(r !== 'aborted' && r.status === 201);
  const page = await fetch(`http://127.0.0.1:${other.port}/?token=${other.token}`);
  assert.equal(page.status, 503);
  assert.match(await page.text(), /npm run build:renderer/);
  await other.close();
  assert.ok(!existsSync(other.uploadDir));
});

async function waitFor(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
