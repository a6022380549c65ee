// The app's side of userspace networking under plain Node: with no daemon the app starts its own engine in 'auto'
// networking with the proxy addresses from its prefs file (a small engine served over the real engine protocol
// stands in for the worker thread, so the test sees exactly what the worker would be started with); the
// snapshot carries the mode, the proxies and how to get full mode, and drops the "needs administrator rights"
// warning that userspace mode answers; the proxy prefs accept loopback host:port only, each error naming its field.
// The real engine falling back is exercised end to end by test/interop/app-userspace.test.ts.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { AppController } from '../../main/controller/app-controller.ts';
import { DEFAULT_APP_PREFS, parseAppPrefs } from '../../main/controller/app-prefs.ts';
import { type EngineLink, openAppEngineLink, workerDataPath } from '../../main/controller/engine-link.ts';
import { healthView, networkingView } from '../../main/controller/networking.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import type { DataPathSettings } from '../../main/engine/engine.ts';
import { EngineClient, PortTransport, serveEngine } from '../../main/engine/ipc/rpc.ts';
import {
  type CommandMap,
  type CommandName,
  type EngineApi,
  EngineError,
  type EngineEvent,
  type NetworkingStatus,
  type StatusSnapshot,
} from '../../main/engine/protocol.ts';
import { ApiError } from '../../preload/api.ts';
import { checkListenAddress } from '../../preload/listen-address.ts';
import { stubDelegate } from './stub-delegate.ts';

const EPERM = 'cannot open the data path: open /dev/net/tun: EPERM (operation not permitted)';

/** Running, with the networking and health the test sets. */
class NetEngine implements EngineApi {
  networking: NetworkingStatus | undefined;
  health = [{ code: 'data-path', message: EPERM }];

  status(): StatusSnapshot {
    return {
      state: 'Running',
      prefs: { ...DEFAULT_PREFS, advertiseRoutes: [] },
      self: { id: 1, name: 'desk', dnsName: 'desk.tail.example', addresses: ['100.64.0.1'], user: 'alice' },
      peers: [],
      health: this.health,
      ...(this.networking ? { networking: this.networking } : {}),
    };
  }

  async handle<C extends CommandName>(cmd: C, _args: CommandMap[C]['args']): Promise<CommandMap[C]['result']> {
    if (cmd === 'fileList') return [] as CommandMap[C]['result'];
    if (cmd === 'start' || cmd === 'status') return this.status() as CommandMap[C]['result'];
    if (cmd === 'setPrefs') return this.status().prefs as CommandMap[C]['result'];
    throw new EngineError('bad-request', `not scripted: ${cmd}`);
  }

  onEvent(_listener: (e: EngineEvent) => void): () => void {
    return () => {};
  }

  async close(): Promise<void> {}
}

/** A worker stand-in: the engine served over a MessageChannel; records the data path it was started with. */
function fakeWorker(engine: NetEngine, started: DataPathSettings[]) {
  return async (dataPath: DataPathSettings) => {
    started.push(dataPath);
    const { port1, port2 } = new MessageChannel();
    serveEngine(engine, new PortTransport(port2));
    const client = new EngineClient(new PortTransport(port1));
    return { client, stop: async () => client.close() };
  };
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-controller-net-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('no daemon: the app starts its own engine in auto networking with the proxies from its prefs', async () => {
  await withDir(async (dir) => {
    const started: DataPathSettings[] = [];
    const engine = new NetEngine();
    const prefsPath = join(dir, 'app-prefs.json');
    const open = () =>
      openAppEngineLink({
        socketPath: join(dir, 'no-daemon.sock'),
        stateDir: join(dir, 'engine'),
        tunName: 'trellis0',
        prefsPath,
        startWorker: fakeWorker(engine, started),
      });
    // A first run (no prefs file): the defaults.
    const first = await open();
    assert.equal(first.kind, 'worker');
    await first.close();
    assert.deepEqual(started[0], {
      tunName: 'trellis0',
      port: 41641,
      networking: 'auto',
      socks5Listen: '127.0.0.1:1055',
      httpProxyListen: '127.0.0.1:1056',
    });
    // What the user set; an empty address turns that proxy off.
    await writeFile(prefsPath, JSON.stringify({ socks5Listen: '[::1]:9050', httpProxyListen: '' }));
    await (await open()).close();
    assert.deepEqual(started[1], { tunName: 'trellis0', port: 41641, networking: 'auto', socks5Listen: '[::1]:9050' });
  });
});

test('workerDataPath: TUN only unless asked; a prefs file cannot point a proxy at the network', () => {
  assert.deepEqual(workerDataPath({ socketPath: '', stateDir: '', socks5Listen: '127.0.0.1:1' }), {
    tunName: 'trellis0',
    port: 41641,
  });
  const u = workerDataPath({ socketPath: '', stateDir: '', networking: 'userspace', httpProxyListen: 'localhost:8' });
  assert.deepEqual(u, { tunName: 'trellis0', port: 41641, networking: 'userspace', httpProxyListen: 'localhost:8' });
  const hostile = parseAppPrefs({ socks5Listen: '0.0.0.0:1055', httpProxyListen: 42, notifications: false });
  assert.equal(hostile.socks5Listen, DEFAULT_APP_PREFS.socks5Listen);
  assert.equal(hostile.httpProxyListen, DEFAULT_APP_PREFS.httpProxyListen);
  assert.equal(hostile.notifications, false);
});

test('loopback host:port only, normalized; one sentence otherwise', () => {
  const ok = (t: string) => {
    const r = checkListenAddress(t, 'The SOCKS5 proxy');
    return 'address' in r ? r.address : `error: ${r.error}`;
  };
  assert.equal(ok(' 127.0.0.1:1055 '), '127.0.0.1:1055');
  assert.equal(ok('127.1.2.3:80'), '127.1.2.3:80');
  assert.equal(ok('LOCALHOST:01080'), 'localhost:1080');
  assert.equal(ok('[::1]:1055'), '[::1]:1055');
  assert.equal(ok(''), '');
  assert.match(ok('0.0.0.0:1055'), /^error: The SOCKS5 proxy must listen on this computer only .*not 0\.0\.0\.0\.$/);
  assert.match(ok('192.168.1.2:1055'), /this computer only/);
  assert.match(ok('[fe80::1]:1055'), /this computer only/);
  assert.match(ok('127.0.0.300:1055'), /this computer only/);
  assert.match(ok('127.0.0.1'), /^error: The SOCKS5 proxy needs an address and a port, like 127\.0\.0\.1:1055\.$/);
  assert.match(ok('::1:1055'), /needs an address and a port/);
  assert.match(ok('127.0.0.1:0'), /is not a port/);
  assert.match(ok('127.0.0.1:65536'), /is not a port/);
});

async function controllerOn(engine: NetEngine, dir: string) {
  const started: DataPathSettings[] = [];
  const worker = await fakeWorker(engine, started)({ tunName: 't', port: 1 });
  const link: EngineLink = { kind: 'worker', client: worker.client, where: 'worker', close: worker.stop };
  return AppController.open({ delegate: stubDelegate(), link, prefsPath: join(dir, 'prefs', 'app.json') });
}

test('userspace mode in the snapshot: proxies, reason, full-mode advice; the privilege warning gives way', async () => {
  await withDir(async (dir) => {
    const engine = new NetEngine();
    engine.networking = {
      mode: 'userspace',
      socks5: '127.0.0.1:1055',
      httpProxy: '127.0.0.1:1056',
      reason: 'A network device needs root.',
    };
    const c = await controllerOn(engine, dir);
    try {
      const s = c.snapshot();
      assert.equal(s.networking?.mode, 'userspace');
      assert.equal(s.networking?.socks5, '127.0.0.1:1055');
      assert.equal(s.networking?.httpProxy, '127.0.0.1:1056');
      assert.equal(s.networking?.reason, 'A network device needs root.');
      assert.match(s.networking?.fullModeAdvice ?? '', /^For full mode, .*daemon/);
      assert.deepEqual(s.health, [], 'no "needs administrator rights" warning: userspace mode answers it');
      const tray = c.tray().items.find((i) => i.kind === 'info' && i.label.startsWith('Userspace'));
      assert.deepEqual(tray, { kind: 'info', label: 'Userspace mode — proxy 127.0.0.1:1055' });
    } finally {
      await c.close();
    }
  });
});

test('TUN refused and no userspace mode: the warning stays, as what to do', () => {
  const base = new NetEngine().status();
  const [h] = healthView(base, 'linux');
  assert.equal(h?.code, 'no-tun-privilege');
  assert.match(h?.message ?? '', /needs administrator rights.*sudo trellis daemon/);
  assert.equal(networkingView(base), undefined, 'no networking while the engine does not say');
  const tun = networkingView({ ...base, networking: { mode: 'tun' } }, 'linux');
  assert.deepEqual(tun, { mode: 'tun' }, 'no advice in full mode');
  // The engine's own sentence when the TUN is refused (tun/tun-port.ts) becomes the same advice.
  const engineWords = 'data path: creating a TUN device needs root or CAP_NET_ADMIN: run trellis with sudo';
  const [w] = healthView({ ...base, health: [{ code: 'data-path', message: engineWords }] }, 'linux');
  assert.equal(w?.code, 'no-tun-privilege');
  assert.match(w?.message ?? '', /^Trellis needs administrator rights/);
  const userspace = { ...base, networking: { mode: 'userspace' as const } };
  assert.deepEqual(healthView({ ...userspace, health: [{ code: 'data-path', message: engineWords }] }, 'linux'), []);
  // The engine's reason, as the window prints it: a sentence.
  const said = 'a TUN device needs root or CAP_NET_ADMIN, so apps reach the tailnet through the proxies';
  const asked = networkingView({ ...base, networking: { mode: 'userspace', reason: said } }, 'linux');
  assert.equal(
    asked?.reason,
    'A TUN device needs root or CAP_NET_ADMIN, so apps reach the tailnet through the proxies.',
  );
  const already = networkingView({ ...base, networking: { mode: 'userspace', reason: ' It is so. ' } }, 'linux');
  assert.equal(already?.reason, 'It is so.');
  const other = healthView({ ...base, health: [{ code: 'control-unreachable', message: 'x' }] }, 'linux');
  assert.deepEqual(other, [{ code: 'control-unreachable', message: 'x' }]);
  for (const p of ['win32', 'darwin', 'linux'] as const) {
    const v = networkingView({ ...base, networking: { mode: 'userspace' } }, p);
    assert.match(v?.fullModeAdvice ?? '', /^For full mode, .+\.$/, p);
  }
});

test('setPrefs: proxy addresses are checked, normalized, kept apart and saved; errors name their field', async () => {
  await withDir(async (dir) => {
    const c = await controllerOn(new NetEngine(), dir);
    try {
      const refused = async (arg: object, field: string, re: RegExp) => {
        await assert.rejects(c.call('setPrefs', arg), (e) => {
          assert.ok(e instanceof ApiError, String(e));
          assert.equal(e.field, field);
          assert.match(e.message, re);
          return true;
        });
      };
      await refused({ socks5Listen: '0.0.0.0:1055' }, 'socks5Listen', /^The SOCKS5 proxy must listen on this/);
      await refused({ httpProxyListen: 'example.com:80' }, 'httpProxyListen', /^The HTTP proxy must listen/);
      // What a hostile window may send, past the types.
      const wrongType = { httpProxyListen: 8080 } as unknown as { httpProxyListen: string };
      await assert.rejects(c.call('setPrefs', wrongType), /httpProxyListen must be text/);
      await refused({ httpProxyListen: '127.0.0.1:1055' }, 'httpProxyListen', /need different ports/);
      const prefs = await c.call('setPrefs', { socks5Listen: ' localhost:9050 ', httpProxyListen: '' });
      assert.equal(prefs.socks5Listen, 'localhost:9050');
      assert.equal(prefs.httpProxyListen, '');
      const saved = JSON.parse(await readFile(join(dir, 'prefs', 'app.json'), 'utf8'));
      assert.equal(saved.socks5Listen, 'localhost:9050');
      assert.equal(saved.httpProxyListen, '');
    } finally {
      await c.close();
    }
  });
});

test("a changed proxy address restarts the app's own engine with it; a daemon is not restarted", async () => {
  await withDir(async (dir) => {
    const started: DataPathSettings[] = [];
    const engine = new NetEngine();
    engine.networking = { mode: 'userspace', socks5: '127.0.0.1:1055', httpProxy: '127.0.0.1:1056' };
    const prefsPath = join(dir, 'app-prefs.json');
    const open = () =>
      openAppEngineLink({
        socketPath: join(dir, 'no-daemon.sock'),
        stateDir: join(dir, 'engine'),
        prefsPath,
        startWorker: fakeWorker(engine, started),
      });
    const c = await AppController.open({ delegate: stubDelegate(), link: await open(), prefsPath, reopen: open });
    try {
      assert.equal(started.length, 1);
      await c.call('setPrefs', { socks5Listen: '127.0.0.1:1080' });
      assert.equal(started.length, 2, 'a second engine started');
      assert.equal(started[1]?.socks5Listen, '127.0.0.1:1080');
      assert.equal(started[1]?.httpProxyListen, '127.0.0.1:1056');
      const s = c.snapshot();
      assert.equal(s.link, 'worker');
      assert.equal(s.state, 'Running');
      // The same address again, or another preference: no restart.
      await c.call('setPrefs', { socks5Listen: '127.0.0.1:1080', notifications: false });
      assert.equal(started.length, 2);
    } finally {
      await c.close();
    }
  });
  await withDir(async (dir) => {
    const engine = new NetEngine();
    const { port1, port2 } = new MessageChannel();
    serveEngine(engine, new PortTransport(port2));
    const client = new EngineClient(new PortTransport(port1));
    let reopened = 0;
    const daemon: EngineLink = { kind: 'daemon', client, where: 'socket', close: async () => client.close() };
    const c = await AppController.open({
      delegate: stubDelegate(),
      link: daemon,
      prefsPath: join(dir, 'app.json'),
      reopen: async () => {
        reopened++;
        return daemon;
      },
    });
    try {
      await c.call('setPrefs', { httpProxyListen: '127.0.0.1:8080' });
      assert.equal(reopened, 0, 'the daemon keeps running');
      assert.equal(c.snapshot().link, 'daemon');
    } finally {
      await c.close();
    }
  });
});
