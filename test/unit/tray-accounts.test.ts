// The tray's accounts: the one in use at the top with its server shown plainly, a radio item per account, a way to
// the window to add or remove one; nothing about accounts without an engine or from an engine without them. The
// account list comes from the engine's profiles (controller/accounts.ts shapes it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accountViews } from '../../main/controller/accounts.ts';
import { DEFAULT_APP_PREFS } from '../../main/controller/app-prefs.ts';
import { accountLabel, type TrayItem, trayModel } from '../../main/controller/tray-model.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import type { AccountView, AppSnapshot } from '../../preload/api.ts';

function snapshot(over: Partial<AppSnapshot> = {}): AppSnapshot {
  return {
    link: 'daemon',
    state: 'Running',
    loggingIn: false,
    self: { id: 1, name: 'desk', dnsName: 'desk.one.test', addresses: ['100.64.0.1'], user: 'alice' },
    peers: [],
    health: [],
    prefs: {
      ...DEFAULT_PREFS,
      ...DEFAULT_APP_PREFS,
      advertiseRoutes: [],
      controlURL: 'https://hs.one.example',
    },
    transfers: [],
    received: [],
    pendingSend: [],
    capabilities: { shell: 'electron', openFiles: true, chooseFolder: true, autostart: true },
    ...over,
  };
}

const WORK: AccountView = {
  id: 'a1b2',
  controlURL: 'https://hs.one.example',
  loginName: 'alice',
  tailnet: 'one.test',
  loggedIn: true,
  active: true,
};
const HOME: AccountView = {
  id: 'c3d4',
  controlURL: 'http://10.0.0.5:8080',
  loginName: '',
  tailnet: '',
  loggedIn: false,
  active: false,
};

const submenus = (items: TrayItem[]) => items.filter((i) => i.kind === 'submenu');

test('the account in use heads the menu; each account is a radio item showing its server', () => {
  const model = trayModel(snapshot({ accounts: [WORK, HOME] }));
  const first = model.items[0];
  assert.equal(first?.kind, 'submenu');
  if (first?.kind !== 'submenu') return;
  assert.equal(first.label, 'Account: alice — hs.one.example');
  const accounts = first.items.filter((i) => i.kind === 'account');
  assert.deepEqual(accounts, [
    { kind: 'account', id: 'a1b2', label: 'alice — hs.one.example', active: true },
    { kind: 'account', id: 'c3d4', label: 'not logged in yet — 10.0.0.5:8080', active: false },
  ]);
  const add = first.items.at(-1);
  assert.deepEqual(add, { kind: 'action', action: 'open', label: 'Add or remove accounts…', enabled: true });
  assert.equal(model.items[1]?.kind, 'separator');
  assert.ok(!first.items.some((i) => i.kind === 'action' && i.action === 'admin-console'), 'Headscale: no console');
  const tailscale = trayModel(snapshot({ accounts: [{ ...WORK, adminURL: 'https://login.tailscale.com/admin' }] }));
  const head = tailscale.items[0];
  assert.ok(
    head?.kind === 'submenu' && head.items.some((i) => i.kind === 'action' && i.action === 'admin-console'),
    'an account with an admin console offers it',
  );
  // The rest of the menu is still there: disconnect, devices, log out.
  assert.ok(model.items.some((i) => i.kind === 'action' && i.action === 'disconnect'));
  assert.ok(submenus(model.items).some((i) => i.kind === 'submenu' && i.label === 'Network devices'));
});

test('switching moves the check mark; a logged-out account says so', () => {
  const switched = trayModel(
    snapshot({
      state: 'NeedsLogin',
      self: undefined,
      accounts: [
        { ...WORK, active: false, loggedIn: false },
        { ...HOME, active: true },
      ],
    }),
  );
  const head = switched.items[0];
  assert.ok(head?.kind === 'submenu');
  if (head?.kind !== 'submenu') return;
  assert.equal(head.label, 'Account: not logged in yet — 10.0.0.5:8080');
  const checked = head.items.filter((i) => i.kind === 'account' && i.active).map((i) => (i as { id: string }).id);
  assert.deepEqual(checked, ['c3d4']);
  assert.ok(head.items.some((i) => i.kind === 'account' && i.label === 'alice — hs.one.example (logged out)'));
  assert.ok(switched.items.some((i) => i.kind === 'action' && i.action === 'login'));
});

test('no account menu without an engine, on a first run, or from an engine that has no accounts', () => {
  const none = trayModel(snapshot({ link: 'none', state: 'NoState', self: undefined, accounts: [WORK] }));
  assert.ok(!none.items.some((i) => i.kind === 'submenu' && i.label.startsWith('Account')));
  const firstRun = trayModel(snapshot({ state: 'NeedsLogin', self: undefined, accounts: [HOME] }));
  assert.ok(
    !firstRun.items.some((i) => i.kind === 'submenu' && i.label.startsWith('Account')),
    'a first run has only its one empty account: no menu',
  );
  assert.ok(firstRun.items.some((i) => i.kind === 'action' && i.action === 'login'));
  const old = trayModel(snapshot({ accounts: undefined }));
  assert.equal(old.items[0]?.kind, 'action', 'the menu starts with Disconnect as before');
});

test('labels: server hosts plainly, odd URLs as given; accountViews marks the one in use', () => {
  assert.equal(accountLabel({ ...WORK, loginName: '', tailnet: 'one.test' }), 'one.test — hs.one.example');
  assert.equal(accountLabel({ ...HOME, controlURL: '' }), 'not logged in yet — no server yet');
  assert.equal(accountLabel({ ...HOME, controlURL: 'not a url' }), 'not logged in yet — not a url');
  const views = accountViews({
    current: 'c3d4',
    profiles: [
      {
        id: 'a1b2',
        controlURL: 'https://controlplane.tailscale.com',
        loginName: 'a@x',
        tailnet: 'x',
        loggedIn: true,
        adminURL: 'https://login.tailscale.com/admin/machines',
      },
      { id: 'c3d4', controlURL: 'http://hs', loginName: '', tailnet: '', loggedIn: false },
    ],
  });
  assert.deepEqual(
    views?.map((v) => [v.id, v.active, v.adminURL ?? '']),
    [
      ['a1b2', false, 'https://login.tailscale.com/admin/machines'],
      ['c3d4', true, ''],
    ],
  );
  assert.equal(accountViews(undefined), undefined);
});
