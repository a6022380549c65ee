// The tray's exit node menu and icon (pure models: the Electron shell only draws them): None, the last used exit
// node first, the one suggested by lowest measured latency (online ones only), the one in use when it is neither,
// "Choose another…" when the window has more, allow-LAN as a checkbox; the icon and tooltip say when internet
// traffic goes through an exit node or is held because the chosen one is offline.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_APP_PREFS } from '../../main/controller/app-prefs.ts';
import { type TrayItem, trayModel } from '../../main/controller/tray-model.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import type { AppSnapshot, PeerView } from '../../preload/api.ts';

function peer(name: string, o: Partial<PeerView> = {}): PeerView {
  return {
    id: name.length * 100 + name.charCodeAt(0),
    name,
    dnsName: `${name}.tail.test`,
    addresses: [`100.64.0.${name.length}`],
    os: 'linux',
    user: 'alice',
    online: true,
    expired: false,
    fileTarget: true,
    stableID: `id-${name}`,
    exitNodeOption: true,
    routes: [],
    ...o,
  };
}

const latency = (ms: number) => ({
  via: 'direct' as const,
  latencyMs: ms,
  lastHandshake: 0,
  rxBytes: 0,
  txBytes: 0,
});

const PEERS = [
  peer('paris', { path: latency(40) }),
  peer('tokyo', { path: latency(9) }),
  peer('oslo', { path: latency(3), online: false }),
  peer('lima', { path: latency(25) }),
  peer('nas', { exitNodeOption: false, routes: ['192.168.1.0/24'], path: latency(1) }),
];

function snapshot(over: Partial<AppSnapshot> = {}, prefs: Partial<AppSnapshot['prefs']> = {}): AppSnapshot {
  return {
    link: 'daemon',
    state: 'Running',
    loggingIn: false,
    self: { id: 1, name: 'desk', dnsName: 'desk.tail.test', addresses: ['100.64.0.1'], user: 'alice' },
    peers: PEERS,
    health: [],
    prefs: {
      ...DEFAULT_PREFS,
      ...DEFAULT_APP_PREFS,
      advertiseRoutes: [],
      controlURL: 'https://hs.example',
      ...prefs,
    },
    transfers: [],
    received: [],
    pendingSend: [],
    capabilities: { shell: 'electron', openFiles: true, chooseFolder: true, autostart: true },
    ...over,
  };
}

function exitMenu(s: AppSnapshot): Extract<TrayItem, { kind: 'submenu' }> | undefined {
  const m = trayModel(s).items.find((i) => i.kind === 'submenu' && i.label.startsWith('Exit node'));
  return m?.kind === 'submenu' ? m : undefined;
}

/** Each item as one line: radio/checkbox marks, labels, what a click sets. */
function lines(items: TrayItem[]): string[] {
  return items.map((i) => {
    if (i.kind === 'pref')
      return `${i.style === 'radio' ? '(' : '['}${i.checked ? 'x' : ' '}${i.style === 'radio' ? ')' : ']'} ${i.label} ${JSON.stringify(i.set)}`;
    if (i.kind === 'action') return `> ${i.label} ${i.action}`;
    if (i.kind === 'separator') return '---';
    return `${i.kind} ${'label' in i ? i.label : ''}`;
  });
}

test('no exit node: None checked, then the suggestion by lowest latency among online ones, then the window', () => {
  const menu = exitMenu(snapshot());
  assert.equal(menu?.label, 'Exit node: none');
  assert.deepEqual(lines(menu?.items ?? []), [
    '(x) None {"exitNodeID":""}',
    '( ) tokyo (suggested: lowest latency, 9 ms) {"exitNodeID":"id-tokyo"}',
    '> Choose another… open',
    '---',
    '[ ] Allow LAN access {"exitNodeAllowLANAccess":true}',
  ]);
});

test('the last used one comes first, the suggestion second, the one in use checked', () => {
  const menu = exitMenu(
    snapshot({}, { exitNodeID: 'id-lima', lastExitNodeID: 'id-paris', exitNodeAllowLANAccess: true }),
  );
  assert.deepEqual(lines(menu?.items ?? []), [
    '( ) None {"exitNodeID":""}',
    '( ) paris (last used) {"exitNodeID":"id-paris"}',
    '( ) tokyo (suggested: lowest latency, 9 ms) {"exitNodeID":"id-tokyo"}',
    '(x) lima {"exitNodeID":"id-lima"}',
    '> Choose another… open',
    '---',
    '[x] Allow LAN access {"exitNodeAllowLANAccess":false}',
  ]);
});

test('in use with no earlier one: it is the last used; no "Choose another" when all are listed', () => {
  const peers = [peer('tokyo', { path: latency(9) }), peer('paris', { path: latency(40) })];
  const menu = exitMenu(snapshot({ peers }, { exitNodeID: 'id-paris' }));
  assert.deepEqual(lines(menu?.items ?? []).slice(0, 4), [
    '( ) None {"exitNodeID":""}',
    '(x) paris (last used) {"exitNodeID":"id-paris"}',
    '( ) tokyo (suggested: lowest latency, 9 ms) {"exitNodeID":"id-tokyo"}',
    '---',
  ]);
});

test('no suggestion without a measured latency, and none offline or expired', () => {
  const peers = [
    peer('a', { online: false, path: latency(1) }),
    peer('b', { expired: true, path: latency(2) }),
    peer('c'),
  ];
  const items = lines(exitMenu(snapshot({ peers }))?.items ?? []);
  assert.ok(!items.some((l) => l.includes('suggested')), items.join('\n'));
  assert.ok(items.includes('> Choose another… open'));
});

test('no menu when nobody offers an exit node and none is chosen; a chosen one that left the tailnet stays', () => {
  const peers = [peer('nas', { exitNodeOption: false })];
  assert.equal(exitMenu(snapshot({ peers })), undefined);
  const gone = exitMenu(
    snapshot(
      { peers, exitNode: { id: 'id-old', name: 'id-old', online: null, active: false } },
      { exitNodeID: 'id-old' },
    ),
  );
  assert.equal(gone?.label, 'Exit node: id-old (internet traffic held)');
  const goneTip = trayModel(
    snapshot(
      { peers, exitNode: { id: 'id-old', name: 'id-old', online: null, active: false } },
      { exitNodeID: 'id-old' },
    ),
  ).tooltip;
  assert.match(goneTip, /exit node id-old is no longer in this tailnet: internet traffic is held$/);
  assert.deepEqual(lines(gone?.items ?? []).slice(0, 3), [
    '( ) None {"exitNodeID":""}',
    '(x) id-old — gone {}',
    'info No device offers an exit node now',
  ]);
});

test('the icon and tooltip: through an exit node, held while it is offline, plain otherwise', () => {
  const using = snapshot(
    { exitNode: { id: 'id-tokyo', name: 'tokyo', online: true, active: true } },
    { exitNodeID: 'id-tokyo' },
  );
  assert.equal(trayModel(using).icon, 'exit-node');
  assert.equal(trayModel(using).tooltip, 'Trellis: connected as desk, through exit node tokyo');
  assert.equal(trayModel(using, true).icon, 'exit-node-file-received');
  assert.equal(exitMenu(using)?.label, 'Exit node: tokyo');

  const held = snapshot(
    { exitNode: { id: 'id-oslo', name: 'oslo', online: false, active: true } },
    { exitNodeID: 'id-oslo' },
  );
  assert.equal(trayModel(held).icon, 'exit-node-held');
  assert.equal(trayModel(held, true).icon, 'exit-node-held', 'held traffic outranks a file badge');
  assert.match(trayModel(held).tooltip, /exit node oslo is offline: internet traffic is held$/);
  assert.equal(exitMenu(held)?.label, 'Exit node: oslo (internet traffic held)');
  const oslo = exitMenu(held)?.items.find((i) => i.kind === 'pref' && i.label.startsWith('oslo'));
  assert.equal(oslo?.kind === 'pref' && oslo.label, 'oslo (last used) — offline');

  assert.equal(trayModel(snapshot()).icon, 'connected');
  assert.equal(trayModel(snapshot(), true).icon, 'file-received');
  // Disconnected, nothing goes anywhere: the plain icon, though the choice stays (and its menu with it).
  const stopped = { ...using, state: 'Stopped' as const };
  assert.equal(trayModel(stopped).icon, 'disconnected');
  assert.ok(exitMenu(stopped), 'the exit node can be chosen before connecting');
  assert.equal(exitMenu({ ...using, state: 'NeedsLogin' }), undefined, 'not while logged out');
});

test('the exit node menu sits after the devices and before log out', () => {
  const labels = trayModel(snapshot()).items.map((i) => ('label' in i ? i.label : i.kind));
  const at = labels.indexOf('Exit node: none');
  assert.ok(at > labels.indexOf('Network devices') && at < labels.indexOf('Log out'), labels.join(' | '));
});
