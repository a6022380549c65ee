// The browser never names a folder: the bridge refuses saveReceived with a dir and any auto-save folder but
// `trellis web --save-dir`'s, before the backend sees the call; the save folder defaults to the user's Downloads,
// is created 0700, and the window is told which it is.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { defaultSaveDir, parseWebArgs, prepareSaveDir } from '../../main/cli/web.ts';
import { startWebServer, type WebServer } from '../../main/web/server.ts';
import type {
  ApiArg,
  ApiBackend,
  ApiCallName,
  ApiEventMessage,
  ApiOutcome,
  ApiResult,
  AppSnapshot,
  BridgeServerMessage,
} from '../../preload/api.ts';
import { tempIsolatedEnv } from '../isolated-env.ts';

const TRELLIS = fileURLToPath(new URL('../../main/cli/trellis.mjs', import.meta.url));
const SAVE_DIR = '/srv/trellis-save';

class RecordingBackend implements ApiBackend {
  readonly calls: { name: ApiCallName; arg: unknown }[] = [];
  async call<K extends ApiCallName>(name: K, arg: ApiArg<K>): Promise<ApiResult<K>> {
    this.calls.push({ name, arg });
    return (name === 'saveReceived' ? [] : {}) as ApiResult<K>;
  }
  onEvent(_l: (m: ApiEventMessage) => void): () => void {
    return () => {};
  }
}

const root = mkdtempSync(join(tmpdir(), 'trellis-web-save-'));
const backend = new RecordingBackend();
let withDir: WebServer;
let withoutDir: WebServer;

before(async () => {
  mkdirSync(join(root, 'dist'));
  withDir = await startWebServer({ backend, staticDir: join(root, 'dist'), uploadDir: root, saveDir: SAVE_DIR });
  withoutDir = await startWebServer({ backend, staticDir: join(root, 'dist'), uploadDir: root });
});

after(async () => {
  await withDir.close();
  await withoutDir.close();
  rmSync(root, { recursive: true, force: true });
});

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Makes calls one after another over one socket; resolves with their outcomes. */
async function calls(url: string, list: [ApiCallName, unknown][]): Promise<ApiOutcome<unknown>[]> {
  const ws = await open(url);
  const outcomes: ApiOutcome<unknown>[] = [];
  for (const [i, [name, arg]] of list.entries()) {
    // Events (snapshot pushes) may arrive between calls: wait for this call's reply.
    const reply = new Promise<BridgeServerMessage>((r) => {
      const onMessage = (d: unknown) => {
        const m = JSON.parse(String(d)) as BridgeServerMessage;
        if (m.type !== 'reply') return;
        ws.off('message', onMessage);
        r(m);
      };
      ws.on('message', onMessage);
    });
    ws.send(JSON.stringify({ type: 'call', id: i + 1, name, arg }));
    const m = await reply;
    assert.ok(m.type === 'reply' && m.id === i + 1, JSON.stringify(m));
    outcomes.push(m.outcome);
  }
  ws.close();
  return outcomes;
}

const apiUrl = (w: WebServer) => `ws://127.0.0.1:${w.port}/api?token=${w.token}`;
const refusedWith = (o: ApiOutcome<unknown>, re: RegExp) =>
  !o.ok && o.error.code === 'refused' && re.test(o.error.message);

test('saveReceived naming a folder is refused before the backend, even the save folder itself', async () => {
  const before = backend.calls.length;
  const outcomes = await calls(apiUrl(withDir), [
    ['saveReceived', { dir: '/etc/cron.d' }],
    ['saveReceived', { dir: SAVE_DIR, names: ['a.txt'] }],
    ['saveReceived', { dir: '' }],
    ['saveReceived', { dir: 'relative' }],
  ]);
  for (const o of outcomes) assert.ok(refusedWith(o, /^The browser cannot choose a folder/), JSON.stringify(o));
  assert.equal(backend.calls.length, before, 'nothing reached the backend');
  const [ok] = await calls(apiUrl(withDir), [['saveReceived', { names: ['a.txt'] }]]);
  assert.deepEqual(ok, { ok: true, result: [] });
  assert.deepEqual(backend.calls.at(-1), { name: 'saveReceived', arg: { names: ['a.txt'] } });
});

test('setPrefs may set autoSaveDir only to the save folder or off', async () => {
  const before = backend.calls.length;
  const refused = await calls(apiUrl(withDir), [
    ['setPrefs', { autoSaveDir: '/root' }],
    ['setPrefs', { autoSaveDir: `${SAVE_DIR}/../etc` }],
    ['setPrefs', { autoSaveDir: 'nonexistent/dir' }],
    ['setPrefs', { autoSaveDir: 42 }],
    ['setPrefs', { autoSaveDir: null, hostname: 'box' }],
  ]);
  for (const o of refused) {
    assert.ok(
      refusedWith(o, /auto-save can only be turned on \(to \/srv\/trellis-save\) or off\.$/),
      JSON.stringify(o),
    );
  }
  assert.equal(backend.calls.length, before, 'nothing reached the backend');
  const allowed = await calls(apiUrl(withDir), [
    ['setPrefs', { autoSaveDir: SAVE_DIR }],
    ['setPrefs', { autoSaveDir: '' }],
    ['setPrefs', { hostname: 'box' }],
  ]);
  assert.ok(allowed.every((o) => o.ok));
  assert.deepEqual(
    backend.calls.slice(before).map((c) => c.arg),
    [{ autoSaveDir: SAVE_DIR }, { autoSaveDir: '' }, { hostname: 'box' }],
  );
});

test('a server started without a save folder lets the browser only turn auto-save off', async () => {
  const [on, off, named] = await calls(apiUrl(withoutDir), [
    ['setPrefs', { autoSaveDir: SAVE_DIR }],
    ['setPrefs', { autoSaveDir: '' }],
    ['saveReceived', { dir: SAVE_DIR }],
  ]);
  assert.ok(refusedWith(on, /^From the browser, auto-save can only be turned off\.$/));
  assert.ok(off.ok);
  assert.ok(refusedWith(named, /cannot choose a folder/));
});

test('the save folder: --save-dir, else $XDG_DOWNLOAD_DIR when absolute, else ~/Downloads', () => {
  assert.equal(parseWebArgs([], {}, '/home/u').saveDir, '/home/u/Downloads');
  assert.equal(parseWebArgs([], { XDG_DOWNLOAD_DIR: '/data/dl' }, '/home/u').saveDir, '/data/dl');
  assert.equal(defaultSaveDir({ XDG_DOWNLOAD_DIR: 'dl' }, '/home/u'), '/home/u/Downloads');
  assert.equal(parseWebArgs(['--save-dir', '/mnt/in'], { XDG_DOWNLOAD_DIR: '/d' }, '/h').saveDir, '/mnt/in');
  assert.equal(parseWebArgs(['--save-dir', 'in'], {}, '/h').saveDir, resolve('in'), 'relative to where it ran');
  assert.throws(() => parseWebArgs(['--save-dir='], {}, '/h'), /--save-dir needs a folder/);
});

test('prepareSaveDir creates a missing folder 0700, keeps an existing one, refuses a file', async () => {
  const dir = join(root, 'home', 'Downloads');
  await prepareSaveDir(dir);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const existing = join(root, 'shared');
  mkdirSync(existing, { mode: 0o755 });
  await prepareSaveDir(existing);
  assert.equal(statSync(existing).mode & 0o777, 0o755, 'an existing folder is left as it is');
  writeFileSync(join(root, 'plain-file'), '');
  await assert.rejects(
    prepareSaveDir(join(root, 'plain-file')),
    /^Error: cannot create the folder for received files, .*plain-file \(something there is not a folder\); pick another with --save-dir$/,
  );
});

test('trellis web creates ~/Downloads, tells the window, and refuses another folder', async () => {
  const home = tempIsolatedEnv();
  const args = [TRELLIS, 'web', '--port', '0', '--socket', join(home.dir, 'none.sock')];
  // No XDG_DOWNLOAD_DIR: the default is ~/Downloads.
  const child = spawn(process.execPath, args, { env: { ...process.env, ...home.env, XDG_DOWNLOAD_DIR: '' } });
  try {
    const out = await waitForOutput(child, /Received files are saved to (.*)\n/);
    const downloads = join(home.env.HOME, 'Downloads');
    assert.equal(/Received files are saved to (.*)\n/.exec(out)?.[1], downloads);
    assert.equal(statSync(downloads).mode & 0o777, 0o700);
    const url = /Trellis web UI: http:\/\/127\.0\.0\.1:(\d+)\/\?token=(\S+)/.exec(out);
    assert.ok(url, out);
    const [snapshot, named] = await calls(`ws://127.0.0.1:${url[1]}/api?token=${url[2]}`, [
      ['getSnapshot', undefined],
      ['saveReceived', { dir: '/tmp' }],
    ]);
    assert.ok(snapshot.ok);
    assert.equal((snapshot.result as AppSnapshot).capabilities.saveDir, downloads);
    assert.ok(refusedWith(named, /cannot choose a folder/));
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    home.remove();
  }
});

/** Resolves with everything the process printed once re matches it; fails if it exits or takes over 20 s. */
function waitForOutput(child: ChildProcess, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no match within 20 s:\n${text}`)), 20_000);
    const onData = (d: Buffer) => {
      text += d.toString();
      if (re.test(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`trellis web exited (${code}):\n${text}`)));
  });
}
