// The app controller's side of exit nodes and routes under plain Node, against a small engine served over the real
// engine protocol (a MessageChannel with rpc.ts on both ends) that applies route prefs with the engine's own
// functions: what a window may set is checked before the engine hears of it, the snapshot carries the exit node
// and the route offer, and the tray's exit node items set prefs and switch the icon. Port forwards go through to the
// engine, whose sentence for a bad entry is what the window gets. The real daemon and
// tailscaled are exercised end to end by test/interop/app-routes.test.ts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { AppController } from '../../main/controller/app-controller.ts';
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
  type StatusSnapshot,
} from '../../main/engine/protocol.ts';
import { exitNodeStatus, markExitNode } from '../../main/engine/routes/exit-node.ts';
import { applyRoutePrefs } from '../../main/engine/routes/route-prefs.ts';
import { checkForwardPortsPref } from '../../main/engine/services/port-forward.ts';
import { ApiError, type AppSnapshot } from '../../preload/api.ts';
import { stubDelegate } from './stub-delegate.ts';

const peer = (id: number, name: string, over: Partial<PeerSummary>): PeerSummary => ({
  id,
  name,
  dnsName: `${name}.tail.example`,
  addresses: [`100.64.0.${id}`],
  online: true,
  os: 'linux',
  user: 'alice',
  expired: false,
  stableID: `stable-${id}`,
  exitNodeOption: false,
  routes: [],
  ...over,
});

/** Running with two peers: one offering an exit node, one routing a subnet. */
class RoutesEngine implements EngineApi {
  readonly setPrefsCalls: unknown[] = [];
  prefs: Prefs = { ...DEFAULT_PREFS, advertiseRoutes: [] };
  peers = [
    peer(2, 'paris', {
      exitNodeOption: true,
      path: { via: 'direct', latencyMs: 8, lastHandshake: 0, rxBytes: 0, txBytes: 0 },
    }),
    peer(3, 'nas', { routes: ['192.168.7.0/24'] }),
  ];

  status(): StatusSnapshot {
    const advertised = [...this.prefs.advertiseRoutes, ...(this.prefs.advertiseExitNode ? ['0.0.0.0/0', '::/0'] : [])];
    return {
      state: 'Running',
      prefs: {
        ...this.prefs,
        advertiseRoutes: [...this.prefs.advertiseRoutes],
        forwardPorts: [...this.prefs.forwardPorts],
      },
      self: { id: 1, name: 'desk', dnsName: 'desk.tail.example', addresses: ['100.64.0.1'], user: 'alice' },
      peers: markExitNode(this.peers, this.prefs.exitNodeID),
      health: [],
      exitNode: exitNodeStatus(this.peers, this.prefs),
      routes: { advertised, approved: advertised.filter((r) => r.startsWith('10.')) },
    };
  }

  async handle<C extends CommandName>(cmd: C, args: CommandMap[C]['args']): Promise<CommandMap[C]['result']> {
    if (cmd === 'setPrefs') {
      this.setPrefsCalls.push(args);
      const forwardPorts = checkForwardPortsPref((args as Partial<Prefs>).forwardPorts); // as the engine: first
      applyRoutePrefs(this.prefs, args as Partial<Prefs>);
      if (forwardPorts) this.prefs.forwardPorts = forwardPorts;
      return { ...this.prefs } as CommandMap[C]['result'];
    }
    if (cmd === 'fileList') return [] as CommandMap[C]['result'];
    if (cmd === 'start' || cmd === 'status') return this.status() as CommandMap[C]['result'];
    throw new EngineError('bad-request', `not scripted: ${cmd}`);
  }

  onEvent(_listener: (e: EngineEvent) => void): () => void {
    return () => {};
  }

  async close(): Promise<void> {}
}

async function rig(engine: RoutesEngine) {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-controller-routes-'));
  const delegate = stubDelegate({
    capabilities: { shell: 'electron', openFiles: true, chooseFolder: false, autostart: false },
  });
  const { port1, port2 } = new MessageChannel();
  serveEngine(engine, new PortTransport(port2));
  const client = new EngineClient(new PortTransport(port1));
  const link = { kind: 'daemon' as const, client, where: 'test', close: async () => client.close() };
  const controller = await AppController.open({ delegate, link, prefsPath: join(dir, 'app.json') });
  const notices: string[] = [];
  controller.onEvent((m) => {
    if (m.event === 'notice') notices.push(m.payload.message);
  });
  return {
    controller,
    notices,
    done: async () => {
      await controller.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function until(c: AppController, check: (s: AppSnapshot) => boolean, what: string): Promise<AppSnapshot> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = c.snapshot();
    if (check(s)) return s;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the window sets route prefs: checked, canonical, passed to the engine; the snapshot shows the result', async () => {
  const engine = new RoutesEngine();
  const r = await rig(engine);
  try {
    const s0 = await until(r.controller, (s) => s.peers.length === 2, 'peers');
    assert.deepEqual(
      s0.peers.map((p) => [p.name, p.stableID, p.exitNodeOption, p.routes]),
      [
        ['nas', 'stable-3', false, ['192.168.7.0/24']],
        ['paris', 'stable-2', true, []],
      ],
    );
    const refused = (p: Promise<unknown>, field?: string) =>
      assert.rejects(p, (e) => e instanceof ApiError && e.code === 'bad-request' && e.field === field);
    await refused(r.controller.call('setPrefs', { exitNodeID: 'stable-3' }), 'exitNodeID');
    await refused(r.controller.call('setPrefs', { advertiseRoutes: ['10.1.0.0/8'] }), 'advertiseRoutes');
    await refused(r.controller.call('setPrefs', { lastExitNodeID: 'stable-2' }));
    await refused(r.controller.call('setPrefs', { routeAll: 'yes' } as never));
    assert.equal(engine.setPrefsCalls.length, 0, 'nothing refused reached the engine');

    const prefs = await r.controller.call('setPrefs', {
      exitNodeID: 'stable-2',
      exitNodeAllowLANAccess: true,
      routeAll: true,
      advertiseExitNode: true,
      advertiseRoutes: ['10.9.0.0/16', 'FD00::/64'],
    });
    assert.deepEqual(engine.setPrefsCalls, [
      {
        exitNodeID: 'stable-2',
        exitNodeAllowLANAccess: true,
        routeAll: true,
        advertiseExitNode: true,
        advertiseRoutes: ['10.9.0.0/16', 'fd00::/64'],
      },
    ]);
    assert.equal(prefs.exitNodeID, 'stable-2');
    const s = r.controller.snapshot();
    assert.deepEqual(s.exitNode, { id: 'stable-2', name: 'paris', online: true, active: true });
    assert.equal(s.peers.find((p) => p.name === 'paris')?.exitNode, true);
    assert.deepEqual(s.routes, {
      advertised: ['10.9.0.0/16', 'fd00::/64', '0.0.0.0/0', '::/0'],
      approved: ['10.9.0.0/16'],
    });
    assert.equal(r.controller.tray().icon, 'exit-node');
  } finally {
    await r.done();
  }
});

test('the tray: None clears the exit node (remembered as last used), allow-LAN flips, a refusal is a notice', async () => {
  const engine = new RoutesEngine();
  const r = await rig(engine);
  try {
    await until(r.controller, (s) => s.peers.length === 2, 'peers');
    await r.controller.traySetPrefs({ exitNodeID: 'stable-2' });
    assert.equal(r.controller.tray().icon, 'exit-node');
    await r.controller.traySetPrefs({ exitNodeID: '' });
    const s = r.controller.snapshot();
    assert.equal(s.prefs.exitNodeID, '');
    assert.equal(s.prefs.lastExitNodeID, 'stable-2');
    const tray = r.controller.tray();
    assert.equal(tray.icon, 'connected');
    const menu = tray.items.find((i) => i.kind === 'submenu' && i.label === 'Exit node: none');
    assert.ok(menu?.kind === 'submenu');
    const lan = menu.items.find((i) => i.kind === 'pref' && i.style === 'checkbox');
    assert.ok(lan?.kind === 'pref');
    assert.deepEqual(lan.set, { exitNodeAllowLANAccess: true });
    await r.controller.traySetPrefs(lan.set);
    assert.equal(r.controller.snapshot().prefs.exitNodeAllowLANAccess, true);

    // An item naming a peer that does not offer an exit node (a menu drawn before the peer stopped offering).
    await r.controller.traySetPrefs({ exitNodeID: 'stable-3' });
    await until(r.controller, () => r.notices.length > 0, 'a notice');
    assert.match(r.notices[0], /^The device nas does not offer to be an exit node\.$/);
    assert.equal(r.controller.snapshot().prefs.exitNodeID, '');
  } finally {
    await r.done();
  }
});

test('port forwards: a list of text goes to the engine; its refusal, one sentence per bad entry, comes back', async () => {
  const engine = new RoutesEngine();
  const r = await rig(engine);
  try {
    await until(r.controller, (s) => s.peers.length === 2, 'peers');
    await assert.rejects(
      r.controller.call('setPrefs', { forwardPorts: '8080' } as never),
      (e) => e instanceof ApiError && e.code === 'bad-request',
    );
    await assert.rejects(
      r.controller.call('setPrefs', { forwardPorts: [8080] } as never),
      (e) => e instanceof ApiError && e.code === 'bad-request',
    );
    assert.equal(engine.setPrefsCalls.length, 0, 'a list of anything but text stops at the controller');

    const prefs = await r.controller.call('setPrefs', { forwardPorts: ['8080', ' 2222=22 '] });
    assert.deepEqual(prefs.forwardPorts, ['8080', '2222=22'], 'the reply carries the canonical list');
    await until(r.controller, (s) => s.prefs.forwardPorts.join() === '8080,2222=22', 'the snapshot with them');

    await assert.rejects(r.controller.call('setPrefs', { forwardPorts: ['8080', '70000', '8080'] }), (e) => {
      assert.ok(e instanceof ApiError && e.code === 'bad-request');
      assert.equal(
        e.message,
        '"70000" is not a port forward: give PORT or TAILNET_PORT=LOCAL_PORT, ports from 1 to 65535. ' +
          'Tailnet port 8080 is forwarded more than once.',
      );
      return true;
    });
    assert.deepEqual(r.controller.snapshot().prefs.forwardPorts, ['8080', '2222=22'], 'a refusal changes nothing');
  } finally {
    await r.done();
  }
});
