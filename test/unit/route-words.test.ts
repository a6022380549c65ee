// Routes in the window's words: a typed CIDR canonical or refused in one sentence; an address found inside a
// route; what the controller lets a window set for exit nodes and routes (a field named for every refusal).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validatePrefs } from '../../main/controller/views.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import type { PeerSummary, StatusSnapshot } from '../../main/engine/protocol.ts';
import { ApiError, type PeerView } from '../../preload/api.ts';
import { addressInRoute, checkRoute, checkRoutes } from '../../preload/routes.ts';
import { matchesPeer } from '../../renderer/src/lib/peer-filter.ts';

test('a typed route: canonical when right, one sentence saying what is wrong otherwise', () => {
  assert.deepEqual(checkRoute(' 192.168.1.0/24 '), { route: '192.168.1.0/24' });
  assert.deepEqual(checkRoute('FD7A:115C:A1E0:0:0:0:0:0/48'), { route: 'fd7a:115c:a1e0::/48' });
  assert.deepEqual(checkRoute('2001:db8:0:0:1:0:0:0/80'), { route: '2001:db8:0:0:1::/80' });
  assert.deepEqual(checkRoute('::ffff:10.0.0.0/120'), { route: '::ffff:a00:0/120' });
  assert.deepEqual(checkRoute('10.1.2.3/32'), { route: '10.1.2.3/32' });
  for (const [typed, said] of [
    ['10.0.0.1/24', /^10\.0\.0\.1\/24 has bits set past its prefix; the route is 10\.0\.0\.0\/24\.$/],
    ['10.0.0.0', /^10\.0\.0\.0 needs a prefix length, like 10\.0\.0\.0\/32\.$/],
    ['10.0.0.0/33', /is not a route/],
    ['256.0.0.0/8', /is not a route/],
    ['01.2.3.0/24', /is not a route/],
    ['1::2::3/64', /is not a route/],
    ['nas.local/24', /is not a route/],
    ['::/0', /Run as exit node/],
    ['', /^Type a route/],
  ] as const) {
    const r = checkRoute(typed);
    assert.ok('error' in r, `${typed} refused`);
    if ('error' in r) assert.match(r.error, said);
  }
  assert.deepEqual(checkRoutes(['10.0.0.0/8', '10.0.0.0/8', 'fd00::/8']), { routes: ['10.0.0.0/8', 'fd00::/8'] });
});

test('an address inside a route finds its router; other families and outside addresses do not', () => {
  assert.equal(addressInRoute('192.168.1.77', '192.168.1.0/24'), true);
  assert.equal(addressInRoute('192.168.2.1', '192.168.1.0/24'), false);
  assert.equal(addressInRoute('fd00::1', 'fd00::/64'), true);
  assert.equal(addressInRoute('fd00::1', '10.0.0.0/8'), false);
  const nas: PeerView = {
    id: 7,
    name: 'nas',
    dnsName: 'nas.ts.net',
    addresses: ['100.64.0.7'],
    os: 'linux',
    user: 'u',
    online: true,
    expired: false,
    fileTarget: false,
    stableID: 'n7',
    exitNodeOption: true,
    routes: ['10.8.0.0/16'],
  };
  assert.equal(matchesPeer(nas, '10.8.3.4'), true);
  assert.equal(matchesPeer(nas, '10.9.3.4'), false);
  assert.equal(matchesPeer(nas, 'EXIT'), true);
  assert.equal(matchesPeer(nas, '10.8.0.0/16'), true);
  assert.equal(matchesPeer({ ...nas, exitNodeOption: false, routes: [] }, 'exit'), false);
});

const PEER = (id: number, name: string, exitNodeOption: boolean): PeerSummary => ({
  id,
  name,
  dnsName: `${name}.ts.net.`,
  addresses: [`100.64.0.${id}`],
  online: true,
  os: 'linux',
  user: 'u',
  expired: false,
  stableID: `s${id}`,
  exitNodeOption,
  routes: [],
});
const STATUS: StatusSnapshot = {
  state: 'Running',
  prefs: { ...DEFAULT_PREFS, advertiseRoutes: [] },
  peers: [PEER(2, 'exit', true), PEER(3, 'plain', false)],
  health: [],
};

test('route prefs from a window: checked, canonical, and every refusal names its field in a sentence', () => {
  assert.deepEqual(
    validatePrefs(
      { exitNodeID: 's2', exitNodeAllowLANAccess: true, routeAll: true, advertiseRoutes: ['FD00::/64', '10.0.0.0/8'] },
      STATUS,
    ).engine,
    { exitNodeID: 's2', exitNodeAllowLANAccess: true, routeAll: true, advertiseRoutes: ['fd00::/64', '10.0.0.0/8'] },
  );
  assert.deepEqual(validatePrefs({ exitNodeID: '' }, STATUS).engine, { exitNodeID: '' });
  for (const [prefs, field, said] of [
    [{ exitNodeID: 's3' }, 'exitNodeID', /^The device plain does not offer to be an exit node\.$/],
    [{ exitNodeID: 's9' }, 'exitNodeID', /not in this tailnet/],
    [{ advertiseRoutes: ['10.0.0.1/8'] }, 'advertiseRoutes', /bits set past its prefix/],
    [
      { advertiseRoutes: Array.from({ length: 300 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`) },
      'advertiseRoutes',
      /At most/,
    ],
  ] as const) {
    assert.throws(
      () => validatePrefs(prefs, STATUS),
      (e) => e instanceof ApiError && e.field === field && said.test(e.message) && /^[A-Z0-9].*\.$/.test(e.message),
    );
  }
  for (const bad of [
    { advertiseRoutes: '10.0.0.0/8' },
    { routeAll: 'yes' },
    { lastExitNodeID: 's2' },
    { exitNodeID: 2 },
  ]) {
    assert.throws(
      () => validatePrefs(bad, STATUS),
      (e) => e instanceof ApiError && e.code === 'bad-request',
    );
  }
});
