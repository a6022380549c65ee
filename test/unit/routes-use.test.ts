// The pure parts of using routes: CIDR checks, which AllowedIPs a peer gets, the route prefs a setPrefs brings,
// the exit node's status and warning, the CLI's flags and text, and the Linux routing plan.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../main/cli/paths.ts';
import { hasRouteFlags, routeMarks, routePrefsOf, takeBool, takeRouteFlags } from '../../main/cli/route-flags.ts';
import { formatExitNodeList } from '../../main/cli/routes.ts';
import { formatStatus } from '../../main/cli/tailnet.ts';
import type { TailNode } from '../../main/engine/control/tailcfg.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import { createEngine } from '../../main/engine/engine.ts';
import type { PeerSummary, Prefs, StatusSnapshot } from '../../main/engine/protocol.ts';
import { EngineError } from '../../main/engine/protocol.ts';
import { routedPrefixes, selectAllowedIPs } from '../../main/engine/routes/allowed-ips.ts';
import { canonicalCIDR, parseAdvertiseRoutes, RouteError } from '../../main/engine/routes/cidr.ts';
import { exitNodeHealth, exitNodeStatus, markExitNode, resolveExitNode } from '../../main/engine/routes/exit-node.ts';
import {
  CONNMARK_RULES,
  LAN_SOURCE_PREF,
  lanSourceRules,
  syncLanSourceRules,
} from '../../main/engine/routes/linux-connmark.ts';
import {
  applyLinuxRoutes,
  lanPrefixes,
  removeLinuxRoutes,
  wantedRoutes,
} from '../../main/engine/routes/linux-router.ts';
import { type ConnmarkOps, OsRoutes } from '../../main/engine/routes/os-routes.ts';
import { applyRoutePrefs } from '../../main/engine/routes/route-prefs.ts';

test('canonicalCIDR: canonical text, host bits and bad input refused with the reason', () => {
  assert.equal(canonicalCIDR('10.1.0.0/16'), '10.1.0.0/16');
  assert.equal(canonicalCIDR(' 2001:0db8:0000::/32 '), '2001:db8::/32');
  assert.equal(canonicalCIDR('192.168.1.7/32'), '192.168.1.7/32');
  assert.throws(() => canonicalCIDR('10.1.2.3/16'), /host bits set; the prefix is 10\.1\.0\.0\/16/);
  assert.throws(() => canonicalCIDR('10.1.0.0'), RouteError);
  assert.throws(() => canonicalCIDR('10.1.0.0/33'), /bad prefix length/);
  assert.throws(() => canonicalCIDR('10.1.0.0/1x'), /bad prefix length/);
  assert.throws(() => canonicalCIDR('nas.local/24'), /IP address/);
  assert.deepEqual(parseAdvertiseRoutes(['10.2.0.0/16', '10.1.0.0/16', '10.2.0.0/16', '']), [
    '10.1.0.0/16',
    '10.2.0.0/16',
  ]);
  assert.throws(() => parseAdvertiseRoutes(['0.0.0.0/0']), /advertise exit node/);
});

function node(id: number, allowed: string[], extra: Partial<TailNode> = {}): TailNode {
  return {
    ID: id,
    StableID: `n${id}`,
    Addresses: [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`],
    AllowedIPs: [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`, ...allowed],
    ...extra,
  } as TailNode;
}

test('AllowedIPs: default routes only for the chosen exit node, subnets only with accept-routes', () => {
  const exit = node(2, ['0.0.0.0/0', '::/0', '192.168.7.0/24']);
  const router = node(3, ['10.9.0.0/16']);
  const own = ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'];
  assert.deepEqual(selectAllowedIPs(exit, { exitNodeID: '', routeAll: false }), own);
  assert.deepEqual(selectAllowedIPs(exit, { exitNodeID: 'n2', routeAll: false }), [...own, '0.0.0.0/0', '::/0']);
  assert.deepEqual(selectAllowedIPs(exit, { exitNodeID: 'n2', routeAll: true }), [
    ...own,
    '0.0.0.0/0',
    '::/0',
    '192.168.7.0/24',
  ]);
  assert.deepEqual(selectAllowedIPs(router, { exitNodeID: 'n2', routeAll: false }), [
    '100.64.0.3/32',
    'fd7a:115c:a1e0::3/128',
  ]);
  assert.deepEqual(routedPrefixes([exit, router], { exitNodeID: 'n2', routeAll: true }), [
    '10.9.0.0/16',
    '192.168.7.0/24',
  ]);
  // Only one default route approved: not an exit node, even when chosen.
  const half = node(4, ['0.0.0.0/0']);
  assert.deepEqual(selectAllowedIPs(half, { exitNodeID: 'n4', routeAll: true }), [
    '100.64.0.4/32',
    'fd7a:115c:a1e0::4/128',
  ]);
});

function prefs(extra: Partial<Prefs> = {}): Prefs {
  return { ...DEFAULT_PREFS, advertiseRoutes: [], ...extra };
}

test('route prefs: checked before any is applied; clearing the exit node keeps it as the last one', () => {
  const p = prefs();
  assert.deepEqual(applyRoutePrefs(p, { exitNodeID: 'nX', routeAll: true }), { routing: true, advertising: false });
  assert.equal(p.exitNodeID, 'nX');
  assert.deepEqual(applyRoutePrefs(p, { exitNodeID: '' }), { routing: true, advertising: false });
  assert.equal(p.exitNodeID, '');
  assert.equal(p.lastExitNodeID, 'nX');
  assert.deepEqual(applyRoutePrefs(p, { advertiseRoutes: ['10.0.0.0/8'], advertiseExitNode: true }), {
    routing: false,
    advertising: true,
  });
  assert.deepEqual(applyRoutePrefs(p, { advertiseRoutes: ['10.0.0.0/8'] }), { routing: false, advertising: false });
  const before = JSON.stringify(p);
  assert.throws(
    () => applyRoutePrefs(p, { routeAll: false, advertiseRoutes: ['10.0.0.1/8'] }),
    (e: unknown) => e instanceof EngineError && e.code === 'bad-request' && /host bits/.test(e.message),
  );
  assert.throws(() => applyRoutePrefs(p, { exitNodeAllowLANAccess: 'yes' as unknown as boolean }), EngineError);
  assert.throws(() => applyRoutePrefs(p, { exitNodeID: 7 as unknown as string }), EngineError);
  assert.equal(JSON.stringify(p), before, 'a refused call changes nothing');
});

function peer(id: number, extra: Partial<PeerSummary> = {}): PeerSummary {
  return {
    id,
    stableID: `n${id}`,
    name: `host${id}`,
    dnsName: `host${id}.tail.example`,
    addresses: [`100.64.0.${id}`, `fd7a:115c:a1e0::${id}`],
    online: true,
    os: 'linux',
    user: 'alice',
    expired: false,
    exitNodeOption: false,
    routes: [],
    ...extra,
  };
}

test('exit node status and warning: in use, offline, not offering, gone', () => {
  const peers = [peer(2, { exitNodeOption: true }), peer(3, { exitNodeOption: true, online: false }), peer(4)];
  assert.equal(exitNodeStatus(peers, { exitNodeID: '' }), undefined);
  const ok = exitNodeStatus(peers, { exitNodeID: 'n2' });
  assert.deepEqual(ok, { id: 'n2', name: 'host2', online: true, active: true });
  assert.equal(exitNodeHealth(ok, true), undefined);
  assert.match(exitNodeHealth(exitNodeStatus(peers, { exitNodeID: 'n3' }), true) ?? '', /host3 is offline/);
  assert.match(exitNodeHealth(exitNodeStatus(peers, { exitNodeID: 'n4' }), true) ?? '', /does not offer/);
  const gone = exitNodeStatus(peers, { exitNodeID: 'n9' });
  assert.deepEqual(gone, { id: 'n9', name: 'n9', online: null, active: false });
  assert.match(exitNodeHealth(gone, true) ?? '', /not in the network map/);
  assert.equal(exitNodeHealth(gone, false), undefined, 'no warning before the first netmap');
  const marked = markExitNode(peers, 'n2');
  assert.equal(marked[0].exitNode, true);
  assert.equal(marked[1].exitNode, undefined);
  assert.equal(peers[0].exitNode, undefined, 'the input is not changed');
});

test('resolveExitNode: by name, MagicDNS name, address; plain errors naming the argument', () => {
  const peers = [peer(2, { exitNodeOption: true }), peer(3)];
  assert.equal(resolveExitNode(peers, 'host2').stableID, 'n2');
  assert.equal(resolveExitNode(peers, 'HOST2.tail.example.').stableID, 'n2');
  assert.equal(resolveExitNode(peers, '100.64.0.2').stableID, 'n2');
  assert.equal(resolveExitNode(peers, 'fd7a:115c:a1e0::2').stableID, 'n2');
  assert.throws(() => resolveExitNode(peers, 'nas'), /no peer named "nas"/);
  assert.throws(() => resolveExitNode(peers, 'host3'), /"host3" \(host3\.tail\.example\) does not offer an exit node/);
});

test('CLI route flags: parsed, empty values clear, bad values are usage errors', () => {
  const args = [
    '--exit-node=host2',
    '--exit-node-allow-lan-access',
    '--accept-routes=false',
    '--advertise-routes=10.2.0.0/16,10.1.0.0/16',
    '--hostname',
    'x',
  ];
  const f = takeRouteFlags(args);
  assert.deepEqual(f, {
    exitNode: 'host2',
    exitNodeAllowLANAccess: true,
    routeAll: false,
    advertiseRoutes: ['10.1.0.0/16', '10.2.0.0/16'],
  });
  assert.deepEqual(args, ['--hostname', 'x'], 'other flags are left for their owner');
  assert.deepEqual(takeRouteFlags(['--exit-node=', '--advertise-routes=']), { exitNode: '', advertiseRoutes: [] });
  assert.deepEqual(takeRouteFlags(['--exit-node', '100.64.0.2']), { exitNode: '100.64.0.2' });
  assert.equal(hasRouteFlags({}), false);
  assert.throws(() => takeRouteFlags(['--advertise-routes=10.0.0.1/8']), UsageError);
  assert.throws(() => takeBool(['--accept-routes=yes'], '--accept-routes'), /true or false, not "yes"/);
  assert.throws(() => takeRouteFlags(['--exit-node']), /needs a value/);
  const peers = [peer(2, { exitNodeOption: true })];
  assert.deepEqual(routePrefsOf({ exitNode: 'host2', routeAll: true }, { peers }), {
    exitNodeID: 'n2',
    routeAll: true,
  });
  assert.deepEqual(routePrefsOf({ exitNode: '' }, { peers: [] }), { exitNodeID: '' });
  assert.throws(() => routePrefsOf({ exitNode: 'nas' }, { peers }), /--exit-node: no peer named "nas"/);
});

test('CLI text: exit-node list and status marks', () => {
  const peers = markExitNode(
    [
      peer(2, { exitNodeOption: true, online: false }),
      peer(3, {
        exitNodeOption: true,
        path: { via: 'direct', latencyMs: 1.23, lastHandshake: 0, rxBytes: 0, txBytes: 0 },
      }),
      peer(4, { routes: ['10.9.0.0/16'] }),
    ],
    'n3',
  );
  assert.equal(
    formatExitNodeList(peers.filter((p) => p.exitNodeOption)),
    [
      'IP          HOSTNAME            STATUS   LATENCY',
      '100.64.0.2  host2.tail.example  offline  -',
      '100.64.0.3  host3.tail.example  online   1.2 ms   in use',
      '',
    ].join('\n'),
  );
  assert.equal(formatExitNodeList([]), 'No peer offers an exit node.\n');
  assert.equal(routeMarks(peers[0]), 'offers exit node');
  assert.equal(routeMarks(peers[1]), 'exit node');
  assert.equal(routeMarks(peers[2]), 'routes 10.9.0.0/16');
  const snap: StatusSnapshot = {
    state: 'Running',
    prefs: prefs({ exitNodeID: 'n3' }),
    self: { id: 1, dnsName: 'me.tail.example', name: 'me', addresses: ['100.64.0.1'], user: 'alice' },
    peers,
    health: [],
    exitNode: { id: 'n3', name: 'host3', online: true, active: true },
  };
  const text = formatStatus(snap);
  assert.match(text, /\n100\.64\.0\.3 +host3 +alice +linux +online +direct; exit node\n/);
  assert.match(text, /host2 .*offline +offers exit node/);
  assert.match(text, /host4 .*routes 10\.9\.0\.0\/16/);
  assert.match(text, /# Exit node: host3 \(in use\)/);
});

test('Linux plan: table 52 holds subnets, both defaults and throw routes; LANs from ip -j addr', () => {
  const addrJson = JSON.stringify([
    { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
    {
      ifname: 'eth0',
      addr_info: [
        { family: 'inet', local: '192.168.1.20', prefixlen: 24 },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
        { family: 'inet6', local: '2001:db8:1::20', prefixlen: 64 },
      ],
    },
    { ifname: 'trellis0', addr_info: [{ family: 'inet', local: '100.64.0.1', prefixlen: 32 }] },
  ]);
  const lans = lanPrefixes(addrJson, 'trellis0');
  assert.deepEqual(lans, ['192.168.1.0/24', '2001:db8:1::/64']);
  assert.deepEqual(lanPrefixes('not json', 't'), []);
  const plan = { tunName: 'trellis0', subnets: ['10.9.0.0/16'], exitNode: true, allowLAN: true };
  assert.deepEqual(wantedRoutes(plan, 4, lans), [
    { type: 'unicast', dst: '10.9.0.0/16' },
    { type: 'unicast', dst: 'default' },
    { type: 'throw', dst: '127.0.0.0/8' },
    { type: 'throw', dst: '192.168.1.0/24' },
  ]);
  assert.deepEqual(wantedRoutes({ ...plan, allowLAN: false }, 6, lans), [
    { type: 'unicast', dst: 'default' },
    { type: 'throw', dst: '::1/128' },
  ]);
  assert.deepEqual(wantedRoutes({ ...plan, exitNode: false }, 4, lans), [{ type: 'unicast', dst: '10.9.0.0/16' }]);
});

test('Linux apply: stale table-52 routes deleted, only missing rules added; remove matches our rules in full', async () => {
  const calls: string[] = [];
  const run = async (args: string[]): Promise<string> => {
    calls.push(args.join(' '));
    const s = args.join(' ');
    if (s === '-4 -j route show table 52') {
      return JSON.stringify([
        { dst: 'default', dev: 't0' },
        { dst: '10.8.0.0/16', dev: 't0' },
        { type: 'throw', dst: '127.0.0.0/8' },
      ]);
    }
    if (s === '-4 -j rule show') return JSON.stringify([{ priority: 5210 }, { priority: 5270 }]);
    if (s.endsWith('-j route show table 52') || s.endsWith('-j rule show')) return '[]';
    return '';
  };
  await applyLinuxRoutes({ tunName: 't0', subnets: [], exitNode: true, allowLAN: false }, run);
  assert.ok(calls.includes('-4 route replace default dev t0 table 52'));
  assert.ok(calls.includes('-4 route replace throw 127.0.0.0/8 table 52'));
  assert.ok(calls.includes('-4 route del 10.8.0.0/16 table 52'), calls.join('\n'));
  assert.ok(!calls.some((c) => c.startsWith('-4 route del default')), 'the wanted default route stays');
  const added4 = calls.filter((c) => c.startsWith('-4 rule add'));
  assert.deepEqual(added4, [
    '-4 rule add pref 5230 fwmark 0x80000/0xff0000 table default',
    '-4 rule add pref 5250 fwmark 0x80000/0xff0000 unreachable',
  ]);
  assert.equal(calls.filter((c) => c.startsWith('-6 rule add')).length, 4);
  const replaceAt = calls.indexOf('-6 route replace default dev t0 table 52');
  const ruleAt = calls.findIndex((c) => c.startsWith('-6 rule add'));
  assert.ok(replaceAt >= 0 && replaceAt < ruleAt, 'routes before the rules that use them');

  calls.length = 0;
  let left = 2; // the 5270 rule was added twice: deleted until the kernel says none is left
  await removeLinuxRoutes(async (args) => {
    calls.push(args.join(' '));
    if (args.join(' ') === '-4 rule del pref 5270 table 52' && left-- > 0) return '';
    if (args.includes('del')) throw new Error('RTNETLINK answers: No such file or directory');
    return '';
  });
  assert.equal(calls.filter((c) => c === '-4 rule del pref 5270 table 52').length, 3);
  assert.ok(calls.includes('-4 rule del pref 5210 fwmark 0x80000/0xff0000 table main'));
  assert.ok(calls.includes('-6 route flush table 52'));
});

test('engine: route prefs persist across a restart; a missing exit node is kept and reported; bad input refused', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-routes-'));
  try {
    const engine = createEngine();
    await engine.handle('start', { stateDir: dir });
    const set = await engine.handle('setPrefs', {
      exitNodeID: 'nGone',
      exitNodeAllowLANAccess: true,
      routeAll: true,
      advertiseRoutes: ['10.2.0.0/16', '2001:db8:0::/48'],
    });
    assert.deepEqual(set.advertiseRoutes, ['10.2.0.0/16', '2001:db8::/48']);
    const st = await engine.handle('status', {});
    assert.deepEqual(st.exitNode, { id: 'nGone', name: 'nGone', online: null, active: false });
    await assert.rejects(
      engine.handle('setPrefs', { advertiseRoutes: ['10.2.0.1/16'], routeAll: false }),
      (e: unknown) => e instanceof EngineError && e.code === 'bad-request',
    );
    await engine.close();

    const again = createEngine();
    const st2 = await again.handle('start', { stateDir: dir });
    assert.equal(st2.prefs.exitNodeID, 'nGone');
    assert.equal(st2.prefs.routeAll, true, 'the refused call changed nothing');
    assert.equal(st2.prefs.exitNodeAllowLANAccess, true);
    assert.deepEqual(st2.prefs.advertiseRoutes, ['10.2.0.0/16', '2001:db8::/48']);
    const cleared = await again.handle('setPrefs', { exitNodeID: '' });
    assert.equal(cleared.exitNodeID, '');
    assert.equal(cleared.lastExitNodeID, 'nGone');
    assert.equal((await again.handle('status', {})).exitNode, undefined);
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('connmark rules for strict rp_filter: restore on prerouting, save on every marked packet out', () => {
  assert.deepEqual(
    CONNMARK_RULES.map((r) => r.join(' ')),
    [
      'PREROUTING -m conntrack --ctstate ESTABLISHED,RELATED -j CONNMARK --restore-mark --nfmask 0xff0000 --ctmask 0xff0000',
      'OUTPUT -m mark --mark 0x80000/0xff0000 -j CONNMARK --save-mark --nfmask 0xff0000 --ctmask 0xff0000',
    ],
  );
});

test('strict rp_filter: rules from our LAN address to its LAN (so neighbours get ARP answers), kept by difference', async () => {
  const addrJson = JSON.stringify([
    { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
    {
      ifname: 'eth0',
      addr_info: [
        { family: 'inet', local: '192.168.1.20', prefixlen: 24 },
        { family: 'inet6', local: '2001:db8:1::20', prefixlen: 64 },
      ],
    },
    { ifname: 'trellis0', addr_info: [{ family: 'inet', local: '100.64.0.1', prefixlen: 32 }] },
  ]);
  assert.deepEqual(lanSourceRules(addrJson, 'trellis0'), [
    ['from', '192.168.1.20', 'to', '192.168.1.0/24', 'table', 'main'],
  ]);
  assert.deepEqual(lanSourceRules('{oops', 'trellis0'), []);
  // A stale rule (an address the interface lost) goes; the wanted one is added; nobody else's rule is touched.
  const calls: string[] = [];
  const rules = [
    { priority: 5260, src: '10.0.0.5', dst: '10.0.0.0', dstlen: 8, table: 'main' },
    { priority: 5270, table: '52' },
  ];
  await syncLanSourceRules(async (args) => {
    calls.push(args.join(' '));
    if (args.includes('addr')) return addrJson;
    if (args.includes('show')) return JSON.stringify(rules);
    return '';
  }, 'trellis0');
  const changes = calls.filter((c) => / rule (add|del) /.test(c));
  assert.deepEqual(changes, [
    `-4 rule add pref ${LAN_SOURCE_PREF} from 192.168.1.20 to 192.168.1.0/24 table main`,
    `-4 rule del pref ${LAN_SOURCE_PREF} from 10.0.0.5 to 10.0.0.0/8 table main`,
  ]);
});

test('strict rp_filter: subnets accepted first, an exit node chosen later still gets the connmark rules; undone once', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-osroutes-'));
  try {
    const events: string[] = [];
    const connmark: ConnmarkOps = {
      strictRpFilter: async () => true,
      srcValidMark: async () => '0',
      install: async () => void events.push('install'),
      remove: async (previous) => void events.push(`remove ${previous}`),
    };
    const ip = async (args: string[]) => (args.includes('-j') ? '[]' : '');
    const routes = new OsRoutes(
      dir,
      () => {},
      ip,
      'linux',
      connmark,
      () => true,
    );
    const plan = { tunName: 'trellis0', subnets: ['10.9.0.0/16'], exitNode: false, allowLAN: false };
    assert.equal(await routes.apply(plan), false, 'subnets alone: no connmark');
    assert.deepEqual(events, []);
    assert.equal(await routes.apply({ ...plan, exitNode: true }), true, 'the exit node chosen later: installed now');
    assert.equal(await routes.apply({ ...plan, exitNode: true }), false, 'and only once');
    const record = JSON.parse(await readFile(path.join(dir, 'routes-installed.json'), 'utf8'));
    assert.equal(record.srcValidMark, '0', 'recorded, so a crash undoes it too');
    await routes.remove();
    assert.deepEqual(events, ['install', 'remove 0']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
