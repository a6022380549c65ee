// The tray in userspace networking (a pure model: the Electron shell only draws it): a disabled line says the mode
// and the proxy apps use, right under Connect/Disconnect; in TUN mode, without an engine or before the engine says
// how it networks, there is no such line. The shell draws an info item as a disabled menu item.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_APP_PREFS } from '../../main/controller/app-prefs.ts';
import { type TrayItem, trayModel } from '../../main/controller/tray-model.ts';
import { menuItem } from '../../main/electron/tray-menu.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import type { AppSnapshot } from '../../preload/api.ts';

function snapshot(over: Partial<AppSnapshot> = {}): AppSnapshot {
  return {
    link: 'worker',
    state: 'Running',
    loggingIn: false,
    self: { id: 1, name: 'desk', dnsName: 'desk.tail.test', addresses: ['100.64.0.1'], user: 'alice' },
    peers: [],
    health: [],
    prefs: { ...DEFAULT_PREFS, ...DEFAULT_APP_PREFS, advertiseRoutes: [], controlURL: 'https://hs.example' },
    transfers: [],
    received: [],
    pendingSend: [],
    capabilities: { shell: 'electron', openFiles: true, chooseFolder: true, autostart: true },
    ...over,
  };
}

const modeLines = (items: TrayItem[]) =>
  items.filter((i) => i.kind === 'info' && /userspace/i.test(i.label)).map((i) => (i.kind === 'info' ? i.label : ''));

test('userspace mode: one disabled line with the SOCKS5 proxy, under Disconnect', () => {
  const s = snapshot({
    networking: { mode: 'userspace', socks5: '127.0.0.1:1055', httpProxy: '127.0.0.1:1056', reason: 'No root.' },
  });
  const items = trayModel(s).items;
  assert.deepEqual(modeLines(items), ['Userspace mode — proxy 127.0.0.1:1055']);
  const at = items.findIndex((i) => i.kind === 'info' && i.label.startsWith('Userspace'));
  const before = items[at - 1];
  assert.ok(before?.kind === 'action' && before.action === 'disconnect', 'right under Disconnect');
  const drawn = menuItem(items[at] as TrayItem, { onAction: () => assert.fail('an info line has no action') }, () =>
    assert.fail('an info line copies nothing'),
  );
  assert.equal(drawn.enabled, false, 'drawn disabled');
  assert.equal(drawn.label, 'Userspace mode — proxy 127.0.0.1:1055');
});

test('userspace mode while disconnected still says so; only an HTTP proxy, or none, is named as such', () => {
  const stopped = snapshot({ state: 'Stopped', networking: { mode: 'userspace', socks5: '[::1]:1080' } });
  assert.deepEqual(modeLines(trayModel(stopped).items), ['Userspace mode — proxy [::1]:1080']);
  const http = snapshot({ networking: { mode: 'userspace', httpProxy: '127.0.0.1:8080' } });
  assert.deepEqual(modeLines(trayModel(http).items), ['Userspace mode — HTTP proxy 127.0.0.1:8080']);
  const none = snapshot({ networking: { mode: 'userspace' } });
  assert.deepEqual(modeLines(trayModel(none).items), ['Userspace mode — no proxy running']);
});

test('no line in TUN mode, before the engine says, or without an engine', () => {
  assert.deepEqual(modeLines(trayModel(snapshot({ networking: { mode: 'tun' } })).items), []);
  assert.deepEqual(modeLines(trayModel(snapshot()).items), []);
  const noEngine = snapshot({
    link: 'none',
    linkProblem: 'No daemon.',
    networking: { mode: 'userspace', socks5: '127.0.0.1:1055' },
  });
  assert.deepEqual(modeLines(trayModel(noEngine).items), []);
});
