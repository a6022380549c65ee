// The app controller under plain Node, against a scripted engine served over the real engine protocol (a
// MessageChannel with rpc.ts on both ends): state transitions, the tray for each state, transfers, received
// files, notifications, errors as typed values, a lost engine. The real engine, daemon and tailscaled are
// exercised end to end by test/interop/app-web.test.ts.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { AppController } from '../../main/controller/app-controller.ts';
import type { NotificationKind } from '../../main/controller/delegate.ts';
import { type EngineLink, openEngineLink } from '../../main/controller/engine-link.ts';
import { type TrayItem, trayModel } from '../../main/controller/tray-model.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import { EngineClient, PortTransport, serveEngine } from '../../main/engine/ipc/rpc.ts';
import {
  type CommandMap,
  type CommandName,
  type EngineApi,
  EngineError,
  type EngineEvent,
  type PeerSummary,
  type Prefs,
  type RequestContext,
  type StatusSnapshot,
} from '../../main/engine/protocol.ts';
import { ApiError, type AppSnapshot } from '../../preload/api.ts';
import { stubDelegate } from './stub-delegate.ts';

const PEER: PeerSummary = {
  id: 2,
  name: 'laptop',
  dnsName: 'laptop.tail.example',
  addresses: ['100.64.0.2', 'fd7a:115c:a1e0::2'],
  online: true,
  os: 'linux',
  user: 'alice',
  expired: false,
  stableID: '2',
  exitNodeOption: false,
  routes: [],
};

/** An engine whose answers the test scripts; it records every command it was sent. */
class ScriptedEngine implements EngineApi {
  readonly calls: { cmd: CommandName; args: unknown }[] = [];
  readonly #listeners = new Set<(e: EngineEvent) => void>();
  prefs: Prefs = { ...DEFAULT_PREFS, advertiseRoutes: [] };
  state: StatusSnapshot['state'] = 'NeedsLogin';
  loggedIn = false;
  inbox: { name: string; size: number; modified: number }[] = [];
  loginError: EngineError | undefined;
  /** Set: a login without a key is interactive and leaves this URL pending. */
  interactiveURL: string | undefined;
  authURL: string | undefined;
  /** The bytes each fileSend read from its source. */
  readonly sentBytes: string[] = [];
  /** Pending fileSends, oldest first: the test lets them finish one at a time. */
  readonly sendGates: (() => void)[] = [];

  finishOneSend(): void {
    this.sendGates.shift()?.();
  }

  emit(e: EngineEvent): void {
    for (const l of this.#listeners) l(e);
  }

  setState(state: StatusSnapshot['state']): void {
    this.state = state;
    this.emit({ type: 'event', event: 'state', state });
  }

  status(): StatusSnapshot {
    const running = this.state === 'Running';
    return {
      state: this.state,
      prefs: { ...this.prefs },
      self: this.loggedIn
        ? { id: 1, name: 'desk', dnsName: 'desk.tail.example', addresses: ['100.64.0.1'], user: 'alice' }
        : undefined,
      peers: this.loggedIn ? [PEER] : [],
      authURL: this.authURL,
      health: [],
      fileTargets: running ? ['laptop.tail.example'] : [], // as the engine names them: MagicDNS names
    };
  }

  async handle<C extends CommandName>(
    cmd: C,
    args: CommandMap[C]['args'],
    ctx: RequestContext = {},
  ): Promise<CommandMap[C]['result']> {
    this.calls.push({ cmd, args });
    const r = await this.#answer(cmd, args as Record<string, unknown>, ctx);
    return r as CommandMap[C]['result'];
  }

  async #answer(cmd: CommandName, a: Record<string, unknown>, ctx: RequestContext): Promise<unknown> {
    switch (cmd) {
      case 'start':
      case 'status':
        return this.status();
      case 'setPrefs':
        Object.assign(this.prefs, a);
        return { ...this.prefs };
      case 'login':
        if (this.loginError) throw this.loginError;
        if (this.interactiveURL && !(a as { authKey?: string }).authKey) {
          this.authURL = this.interactiveURL;
          this.setState('NeedsLogin');
          return this.status();
        }
        this.loggedIn = true;
        this.setState('Running');
        return this.status();
      case 'up':
        this.setState('Running');
        return this.status();
      case 'down':
        this.setState('Stopped');
        return this.status();
      case 'logout':
        this.loggedIn = false;
        this.setState('NeedsLogin');
        return this.status();
      case 'fileList':
        return this.inbox;
      case 'fileRead': {
        const f = this.inbox.find((x) => x.name === a.name);
        if (!f) throw new EngineError('bad-request', 'no such file');
        const offset = a.offset as number;
        return Buffer.from('x'.repeat(f.size)).subarray(offset, offset + (a.length as number));
      }
      case 'fileDelete': {
        const before = this.inbox.length;
        this.inbox = this.inbox.filter((f) => f.name !== a.name);
        return { deleted: this.inbox.length < before };
      }
      case 'fileSend': {
        const name = a.name as string;
        const source = ctx.source;
        if (!source) throw new EngineError('bad-request', 'no source');
        // The controller offers the file's bytes; the engine reads them (it never opens the path).
        this.sentBytes.push(Buffer.from(await source.read(0, source.size)).toString());
        this.emit({
          type: 'event',
          event: 'fileProgress',
          target: a.target as string,
          name,
          sent: 4,
          total: 10,
          bytesPerSecond: 40,
        });
        await new Promise<void>((resolve) => this.sendGates.push(resolve));
        return { target: a.target, name, total: 10, resumedFrom: 0 };
      }
      default:
        throw new EngineError('bad-request', `not scripted: ${cmd}`);
    }
  }

  onEvent(listener: (e: EngineEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {}
}

interface Rig {
  engine: ScriptedEngine;
  controller: AppController;
  notes: { kind: NotificationKind; body: string }[];
  copied: string[];
  /** URLs the shell was asked to open in the browser. */
  opened: string[];
  dir: string;
  /** Closes the engine's end of the channel, as a crashed daemon would. */
  dropLink(): void;
  done(): Promise<void>;
}

function linkTo(engine: ScriptedEngine, kind: 'daemon' | 'worker' = 'daemon'): { link: EngineLink; drop: () => void } {
  const { port1, port2 } = new MessageChannel();
  serveEngine(engine, new PortTransport(port2));
  const client = new EngineClient(new PortTransport(port1));
  return {
    link: { kind, client, where: 'test', close: async () => client.close() },
    drop: () => port2.close(),
  };
}

async function rig(
  engine = new ScriptedEngine(),
  reopen?: () => Promise<EngineLink>,
  kind: 'daemon' | 'worker' = 'daemon',
  shell: 'web' | 'electron' = 'web',
): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-controller-'));
  const notes: Rig['notes'] = [];
  const copied: string[] = [];
  const opened: string[] = [];
  const delegate = stubDelegate({
    capabilities: { shell, openFiles: true, chooseFolder: false, autostart: false },
    notify: (n) => notes.push({ kind: n.kind, body: n.body }),
    openExternal: async (url) => void opened.push(url),
    copyText: (t) => copied.push(t),
  });
  const { link, drop } = linkTo(engine, kind);
  const controller = await AppController.open({ delegate, link, prefsPath: join(dir, 'prefs', 'app.json'), reopen });
  return {
    engine,
    controller,
    notes,
    copied,
    opened,
    dir,
    dropLink: drop,
    done: async () => {
      await controller.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Waits (bounded) until the controller's snapshot satisfies check. */
async function until(c: AppController, check: (s: AppSnapshot) => boolean, what: string): Promise<AppSnapshot> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = c.snapshot();
    if (check(s)) return s;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; state ${s.state}, link ${s.link}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function labels(items: TrayItem[]): string[] {
  return items.map((i) => (i.kind === 'separator' ? '—' : i.label));
}

test('logged out: the window and the tray ask for a login', async () => {
  const r = await rig();
  try {
    const s = r.controller.snapshot();
    assert.equal(s.state, 'NeedsLogin');
    assert.equal(s.link, 'daemon');
    const tray = r.controller.tray();
    assert.equal(tray.icon, 'needs-login');
    assert.deepEqual(labels(tray.items), ['—', 'Log in…', 'Open Trellis', 'Quit']);
  } finally {
    await r.done();
  }
});

test('login with an auth key → Running; the tray lists this device and the peers; disconnect → Stopped', async () => {
  const r = await rig();
  try {
    await r.controller.call('login', { controlURL: 'http://203.0.113.10:8080/', authKey: ' tskey-1 ' });
    const setPrefs = r.engine.calls.find((c) => c.cmd === 'setPrefs');
    assert.deepEqual(setPrefs?.args, { controlURL: 'http://203.0.113.10:8080/', wantRunning: true });
    assert.deepEqual(r.engine.calls.find((c) => c.cmd === 'login')?.args, { authKey: 'tskey-1' });
    const s = await until(r.controller, (x) => x.state === 'Running' && x.peers.length === 1, 'Running');
    assert.equal(s.peers[0].fileTarget, true);
    assert.equal(s.loggingIn, false);
    let tray = r.controller.tray();
    assert.equal(tray.icon, 'connected');
    assert.equal(tray.items[0].kind === 'action' && tray.items[0].action, 'disconnect');
    const self = tray.items.find((i) => i.kind === 'copy');
    assert.deepEqual(self, { kind: 'copy', label: 'This device: desk (100.64.0.1)', text: '100.64.0.1' });
    const devices = tray.items.find((i) => i.kind === 'submenu');
    assert.ok(devices?.kind === 'submenu');
    assert.deepEqual(devices.items, [{ kind: 'copy', label: 'laptop (100.64.0.2)', text: '100.64.0.2' }]);

    await r.controller.trayAction('disconnect');
    await until(r.controller, (x) => x.state === 'Stopped', 'Stopped');
    tray = r.controller.tray();
    assert.equal(tray.icon, 'disconnected');
    assert.deepEqual(labels(tray.items), ['Connect', '—', 'Log out', 'Open Trellis', 'Quit']);
    await r.controller.call('connect', undefined);
    assert.equal((await until(r.controller, (x) => x.state === 'Running', 'Running again')).state, 'Running');
  } finally {
    await r.done();
  }
});

test('a refused login: a sentence for the field at fault, the raw error kept; bad calls are typed errors, never crashes', async () => {
  const engine = new ScriptedEngine();
  engine.loginError = new EngineError('auth-key-invalid', 'the control server refused the auth key');
  const r = await rig(engine);
  try {
    await assert.rejects(r.controller.call('login', { controlURL: 'https://hs.example', authKey: 'bad' }), (e) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.code, 'engine');
      assert.equal(e.message, 'The server did not accept this auth key; check it or create a new one.');
      assert.equal(e.field, 'authKey');
      assert.equal(e.detail, 'the control server refused the auth key');
      return true;
    });
    assert.equal(r.controller.snapshot().loggingIn, false);
    const refused = async (p: Promise<unknown>, code: string) =>
      assert.rejects(p, (e) => e instanceof ApiError && e.code === code);
    await refused(r.controller.call('login', { controlURL: 'ftp://x' }), 'bad-request');
    await refused(r.controller.call('sendFiles', { peer: 'laptop', paths: ['/etc/hostname'] }), 'not-connected');
    await refused(r.controller.call('setPrefs', { hostname: 'bad name!' }), 'bad-request');
    await refused(r.controller.call('setPrefs', { nope: true } as never), 'bad-request');
    await refused(r.controller.call('setPrefs', { autoSaveDir: 'relative/dir' }), 'bad-request');
    await refused(r.controller.call('openExternal', 'javascript:alert(1)'), 'refused');
    await refused(r.controller.call('openExternal', 'file:///etc/passwd'), 'refused');
    await refused(r.controller.call('openReceived', '/etc/passwd'), 'refused');
    await refused(r.controller.call('saveReceived', {}), 'bad-request');
  } finally {
    await r.done();
  }
});

test('sending files: queued → sending with progress → done; cancel of a queued file', async () => {
  const r = await rig();
  try {
    await r.controller.call('login', { controlURL: 'https://hs.example', authKey: 'k' });
    await until(r.controller, (x) => x.state === 'Running', 'Running');
    const files = ['a.bin', 'b.bin', 'c.bin'].map((n) => join(r.dir, n));
    for (const f of files) await writeFile(f, '0123456789');
    const ids = await r.controller.call('sendFiles', { peer: 'laptop', paths: files });
    assert.equal(ids.length, 3);
    // Two at a time: the third waits.
    let s = await until(r.controller, (x) => x.transfers.filter((t) => t.sent === 4).length === 2, 'progress');
    assert.deepEqual(
      s.transfers.map((t) => t.state),
      ['sending', 'sending', 'queued'],
    );
    assert.equal(s.transfers[0].total, 10);
    await r.controller.call('cancelTransfer', ids[2]);
    r.engine.finishOneSend();
    s = await until(r.controller, (x) => x.transfers.filter((t) => t.state === 'done').length >= 1, 'one done');
    r.engine.finishOneSend();
    s = await until(r.controller, (x) => x.transfers.filter((t) => t.state === 'done').length === 2, 'both done');
    assert.deepEqual(
      s.transfers.map((t) => t.state),
      ['done', 'done', 'cancelled'],
    );
    assert.equal(s.transfers[0].sent, 10);
    assert.equal(r.engine.calls.filter((c) => c.cmd === 'fileSend').length, 2, 'the cancelled file was never sent');
    assert.deepEqual(r.engine.sentBytes, ['0123456789', '0123456789'], 'the engine read the bytes from the app');
    await r.controller.call('clearTransfers', undefined);
    assert.equal(r.controller.snapshot().transfers.length, 0);
    const missing = await r.controller.call('sendFiles', { peer: 'laptop', paths: [join(r.dir, 'missing')] });
    const failed = r.controller.snapshot().transfers.find((t) => t.id === missing[0]);
    assert.equal(failed?.state, 'failed');
    assert.match(failed?.error ?? '', /not a readable file/);
  } finally {
    await r.done();
  }
});

test('a received file: notification, tray badge until seen, auto-save folder watched', async () => {
  const r = await rig();
  try {
    await r.controller.call('login', { controlURL: 'https://hs.example', authKey: 'k' });
    await until(r.controller, (x) => x.state === 'Running', 'Running');
    r.engine.inbox = [{ name: 'photo.jpg', size: 3, modified: Date.now() }];
    // Every window hears of it too (its toast and badge; `trellis web`'s browser notification).
    const heard: unknown[] = [];
    const stop = r.controller.onEvent((m) => {
      if (m.event === 'notification') heard.push(m.payload);
    });
    r.engine.emit({ type: 'event', event: 'fileReceived', name: 'photo.jpg', size: 3, from: 'laptop' });
    let s = await until(r.controller, (x) => x.received.length === 1, 'inbox listed');
    assert.deepEqual(s.received[0], {
      name: 'photo.jpg',
      size: 3,
      modified: s.received[0].modified,
      where: 'inbox',
      from: 'laptop',
    });
    assert.deepEqual(r.notes, [{ kind: 'file-received', body: 'photo.jpg from laptop' }]);
    assert.deepEqual(heard, [{ kind: 'file-received', title: 'File received', body: 'photo.jpg from laptop' }]);
    stop();
    assert.equal(r.controller.tray().icon, 'file-received');
    r.controller.markFilesSeen();
    assert.equal(r.controller.tray().icon, 'connected');

    const folder = join(r.dir, 'Downloads');
    await r.controller.call('setPrefs', { autoSaveDir: folder });
    s = await until(r.controller, (x) => x.received.some((f) => f.where === 'folder'), 'moved to the folder');
    assert.equal(s.received.length, 1);
    assert.equal(s.received[0].path, join(folder, 'photo.jpg'));
    assert.equal(await readFile(join(folder, 'photo.jpg'), 'utf8'), 'xxx');
    // Persisted 0600.
    assert.equal((await stat(join(r.dir, 'prefs', 'app.json'))).mode & 0o777, 0o600);
    // The folder is watched: a file deleted outside the app leaves the list, a new one joins it.
    await rm(join(folder, 'photo.jpg'));
    await writeFile(join(folder, 'notes.txt'), 'hello');
    s = await until(r.controller, (x) => x.received.length === 1 && x.received[0].name === 'notes.txt', 'watch');
    await r.controller.call('openReceived', join(folder, 'notes.txt'));
  } finally {
    await r.done();
  }
});

test('a lost engine link shows why, and the controller reattaches when the engine is back', async () => {
  let reopened = 0;
  const second = new ScriptedEngine();
  second.state = 'Stopped';
  second.loggedIn = true;
  const r = await rig(new ScriptedEngine(), async () => {
    reopened++;
    return linkTo(second).link;
  });
  try {
    r.dropLink();
    const lost = await until(r.controller, (x) => x.link === 'none', 'link lost');
    assert.match(lost.linkProblem ?? '', /Lost the engine/);
    await assert.rejects(
      r.controller.call('connect', undefined),
      (e) => e instanceof ApiError && e.code === 'no-engine',
    );
    const back = await until(r.controller, (x) => x.link === 'daemon' && x.state === 'Stopped', 'reattached');
    assert.equal(back.self?.name, 'desk');
    assert.equal(reopened, 1);
  } finally {
    await r.done();
  }
});

test('pending sends from a second launch are kept once each and can be dismissed', async () => {
  const r = await rig();
  try {
    r.controller.addPendingSend(['/tmp/a', '/tmp/b']);
    r.controller.addPendingSend(['/tmp/b']);
    assert.deepEqual(r.controller.snapshot().pendingSend, ['/tmp/a', '/tmp/b']);
    await r.controller.call('dismissPendingSend', undefined);
    assert.deepEqual(r.controller.snapshot().pendingSend, []);
    await r.controller.call('copyText', '100.64.0.2');
    assert.deepEqual(r.copied, ['100.64.0.2']);
  } finally {
    await r.done();
  }
});

test('no engine at start: the window says what to do, and the controller attaches once one answers', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-controller-'));
  let tries = 0;
  const engine = new ScriptedEngine();
  const none: EngineLink = {
    kind: 'none',
    problem: 'No Trellis daemon is running.',
    where: 'test',
    close: async () => {},
  };
  const controller = await AppController.open({
    delegate: stubDelegate(),
    link: none,
    prefsPath: join(dir, 'app.json'),
    reopen: async () => (++tries < 2 ? none : linkTo(engine).link),
  });
  try {
    const first = controller.snapshot();
    assert.equal(first.link, 'none');
    assert.equal(first.linkProblem, 'No Trellis daemon is running.');
    assert.equal(controller.tray().items[0].kind, 'info');
    await assert.rejects(controller.call('connect', undefined), (e) => e instanceof ApiError && e.code === 'no-engine');
    // The link is in place a moment before the engine's first status arrives: wait for both.
    const s = await until(controller, (x) => x.link === 'daemon' && x.state !== 'NoState', 'attached');
    assert.equal(s.state, 'NeedsLogin');
    assert.equal(tries, 2);
  } finally {
    await controller.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a TUN the engine may not open becomes advice on what to do', async () => {
  const engine = new ScriptedEngine();
  const status = engine.status.bind(engine);
  engine.status = () => ({
    ...status(),
    health: [{ code: 'data-path', message: 'cannot open the data path: open /dev/net/tun: EPERM' }],
  });
  const r = await rig(engine);
  try {
    const [h] = r.controller.snapshot().health;
    assert.equal(h.code, 'no-tun-privilege');
    assert.match(h.message, /needs administrator rights/);
    assert.match(h.message, process.platform === 'linux' ? /sudo trellis daemon/ : /./);
  } finally {
    await r.done();
  }
});

test('notifications: a key expiring within a day (once), a login lost while connected', async () => {
  const engine = new ScriptedEngine();
  const status = engine.status.bind(engine);
  const expiry = new Date(Date.now() + 2 * 3600_000).toISOString();
  engine.status = () => {
    const s = status();
    return s.self ? { ...s, self: { ...s.self, keyExpiry: expiry } } : s;
  };
  const r = await rig(engine);
  try {
    await r.controller.call('login', { controlURL: 'https://hs.example', authKey: 'k' });
    await until(r.controller, (x) => x.state === 'Running', 'Running');
    await until(r.controller, () => r.notes.length > 0, 'a notification');
    assert.equal(r.notes[0].kind, 'key-expiring');
    assert.match(r.notes[0].body, /expires in about 2 h/);
    // More status refreshes do not repeat it.
    await r.controller.call('setPrefs', { acceptDNS: false });
    assert.equal(r.notes.filter((n) => n.kind === 'key-expiring').length, 1);

    engine.setState('NeedsLogin');
    await until(r.controller, () => r.notes.some((n) => n.kind === 'login-needed'), 'login-needed');
    assert.equal(r.controller.tray().icon, 'needs-login');
  } finally {
    await r.done();
  }
});

test("auto-connect off: the app's own engine starts disconnected; a daemon keeps its state", async () => {
  for (const kind of ['worker', 'daemon'] as const) {
    const engine = new ScriptedEngine();
    engine.loggedIn = true;
    engine.state = 'Running';
    engine.prefs = { ...engine.prefs, controlURL: 'https://hs.example', autoConnect: false, wantRunning: true };
    const r = await rig(engine, undefined, kind);
    try {
      const s = r.controller.snapshot();
      assert.equal(s.state, kind === 'worker' ? 'Stopped' : 'Running', kind);
      assert.equal(
        engine.calls.some((c) => c.cmd === 'down'),
        kind === 'worker',
        kind,
      );
    } finally {
      await r.done();
    }
  }
});

test('openEngineLink: no daemon at the socket means advice, not an error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-link-'));
  try {
    const link = await openEngineLink({ socketPath: join(dir, 'none.sock'), stateDir: '', attachOnly: true });
    assert.equal(link.kind, 'none');
    assert.match(link.problem ?? '', /No Trellis daemon is running at .*none\.sock\. Start it as root/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a login from the tray with the window closed: the tray says it waits for the browser and reopens the page', async () => {
  const engine = new ScriptedEngine();
  engine.interactiveURL = 'https://hs.example/register/tray';
  const r = await rig(engine, undefined, 'daemon', 'electron');
  try {
    await r.controller.trayAction('login');
    await until(r.controller, (x) => x.authURL !== undefined, 'the login URL');
    const tray = r.controller.tray();
    assert.equal(tray.tooltip, 'Trellis: finish logging in in your browser');
    assert.deepEqual(labels(tray.items), [
      '—',
      'Finish logging in in your browser',
      'Open the login page again',
      'Open Trellis',
      'Quit',
    ]);
    assert.deepEqual(r.opened, ['https://hs.example/register/tray'], 'opened once by the login');
    await r.controller.trayAction('login-page');
    assert.deepEqual(r.opened, ['https://hs.example/register/tray', 'https://hs.example/register/tray']);
    // A control server's URL that is not a web page is never offered to the browser.
    const hostile = trayModel({ ...r.controller.snapshot(), authURL: 'file:///etc/passwd' });
    assert.deepEqual(labels(hostile.items), ['—', 'Log in…', 'Open Trellis', 'Quit']);
  } finally {
    await r.done();
  }
});

test('an interactive login: the desktop opens its URL itself; under trellis web the page does; Cancel forgets it', async () => {
  for (const shell of ['electron', 'web'] as const) {
    const engine = new ScriptedEngine();
    engine.interactiveURL = 'https://hs.example/register/abc';
    const r = await rig(engine, undefined, 'daemon', shell);
    try {
      await r.controller.call('login', { controlURL: 'https://hs.example' });
      const s = await until(r.controller, (x) => x.authURL !== undefined, 'the login URL');
      assert.equal(s.authURL, 'https://hs.example/register/abc');
      assert.deepEqual(r.opened, shell === 'electron' ? ['https://hs.example/register/abc'] : [], shell);
      await r.controller.call('cancelLogin', undefined);
      assert.ok(
        engine.calls.some((c) => c.cmd === 'down'),
        'cancel takes the engine down',
      );
    } finally {
      await r.done();
    }
  }
});
