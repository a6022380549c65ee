// The netmap model: every delta kind a control server sends, and hostile entries skipped, not thrown.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NetMap } from '../../main/engine/control/netmap.ts';
import type { MapResponse, TailNode } from '../../main/engine/control/tailcfg.ts';
import { peerSummaries, selfSummary } from '../../main/engine/core/status.ts';

function node(id: number, extra: Partial<TailNode> = {}): TailNode {
  return {
    ID: id,
    Name: `host${id}.tailnet.test.`,
    User: 1,
    Key: `nodekey:${id.toString(16).padStart(64, '0')}`,
    Addresses: [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`],
    Hostinfo: { OS: 'linux', Hostname: `host${id}` },
    ...extra,
  };
}

function initial(): NetMap {
  const nm = new NetMap();
  nm.apply({
    Node: node(1),
    Peers: [node(2), node(3, { Online: true }), node(4)],
    DERPMap: { Regions: { '999': { RegionID: 999, Nodes: [] } } },
    DNSConfig: { Domains: ['tailnet.test'], Proxied: true },
    Domain: 'tailnet.test',
    UserProfiles: [{ ID: 1, LoginName: 'alice' }],
    PacketFilters: { base: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }] },
  });
  return nm;
}

test('the first full map gives self, peers, DERP, DNS, domain, users and filter', () => {
  const nm = initial();
  assert.deepEqual(selfSummary(nm), {
    id: 1,
    dnsName: 'host1.tailnet.test',
    name: 'host1',
    addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'],
    user: 'alice',
    keyExpiry: undefined,
  });
  assert.deepEqual(
    peerSummaries(nm).map((p) => [p.id, p.name, p.online]),
    [
      [2, 'host2', null],
      [3, 'host3', true],
      [4, 'host4', null],
    ],
  );
  assert.equal(nm.derpMap.Regions?.['999']?.RegionID, 999);
  assert.equal(nm.domain, 'tailnet.test');
  assert.equal(nm.packetFilter().length, 1);
  assert.deepEqual(nm.peers.get(2)?.AllowedIPs, nm.peers.get(2)?.Addresses, 'null AllowedIPs means the addresses');
});

test('deltas: PeersRemoved, PeersChanged, PeersChangedPatch, OnlineChange, PeerSeenChange', () => {
  const nm = initial();
  nm.apply({ PeersRemoved: [4] });
  assert.equal(nm.peers.has(4), false);
  nm.apply({ PeersChanged: [node(5), node(2, { Name: 'renamed.tailnet.test.' })] });
  assert.equal(nm.peers.get(2)?.Name, 'renamed.tailnet.test.');
  assert.ok(nm.peers.has(5));
  nm.apply({
    PeersChangedPatch: [
      { NodeID: 3, Online: false, DERPRegion: 999, Endpoints: ['192.0.2.3:41641'] },
      {
        NodeID: 5,
        Key: `nodekey:${'5'.repeat(64)}`,
        DiscoKey: `discokey:${'6'.repeat(64)}`,
        KeyExpiry: '2030-01-01T00:00:00Z',
      },
      { NodeID: 77, Online: true }, // unknown: ignored
    ],
  });
  assert.equal(nm.peers.get(3)?.Online, false);
  assert.equal(nm.peers.get(3)?.HomeDERP, 999);
  assert.deepEqual(nm.peers.get(3)?.Endpoints, ['192.0.2.3:41641']);
  assert.equal(nm.peers.get(5)?.Key, `nodekey:${'5'.repeat(64)}`);
  assert.equal(nm.peers.get(5)?.KeyExpiry, '2030-01-01T00:00:00Z');
  assert.equal(nm.peers.has(77), false);
  nm.apply({ OnlineChange: { '2': true, '5': false } });
  assert.equal(nm.peers.get(2)?.Online, true);
  assert.equal(nm.peers.get(5)?.Online, false);
  nm.apply({ PeerSeenChange: { '2': true, '3': false } });
  assert.ok(typeof nm.peers.get(2)?.LastSeen === 'string');
  assert.equal(nm.peers.get(3)?.LastSeen, null);
});

test('a non-empty Peers list replaces the set; an empty one means no change', () => {
  const nm = initial();
  nm.apply({ Peers: [] });
  assert.equal(nm.peers.size, 3);
  nm.apply({ Peers: [node(9)] });
  assert.deepEqual([...nm.peers.keys()], [9]);
});

test('keep-alives change nothing; absent fields keep their values; self updates (rename, expiry)', () => {
  const nm = initial();
  const v = nm.version;
  assert.equal(nm.apply({ KeepAlive: true }), false);
  assert.equal(nm.apply({ KeepAlive: true, ControlTime: '2026-11-25T00:00:00Z' }), false);
  assert.equal(nm.version, v);
  nm.apply({ Node: node(1, { Name: 'newname.tailnet.test.', KeyExpiry: '2020-01-01T00:00:00Z' }) });
  assert.equal(selfSummary(nm)?.name, 'newname');
  assert.equal(selfSummary(nm)?.keyExpiry, '2020-01-01T00:00:00Z');
  assert.equal(nm.domain, 'tailnet.test', 'absent Domain: unchanged');
  assert.equal(nm.peers.size, 3);
});

test('DERP map: null regions dropped, nil Regions unchanged; legacy DERP string gives HomeDERP', () => {
  const nm = initial();
  nm.apply({ DERPMap: { Regions: null } });
  assert.ok(nm.derpMap.Regions?.['999']);
  nm.apply({ DERPMap: { Regions: { '1': { RegionID: 1, Nodes: [] }, '999': null } } });
  assert.deepEqual(Object.keys(nm.derpMap.Regions ?? {}), ['1']);
  nm.apply({ PeersChanged: [node(6, { DERP: '127.3.3.40:999' })] });
  assert.equal(nm.peers.get(6)?.HomeDERP, 999);
});

test('packet filter chunks: PacketFilter sets base, named chunks, null deletes, "*" clears', () => {
  const nm = initial();
  const rule = (ip: string) => ({ SrcIPs: [ip], DstPorts: [] });
  nm.apply({ PacketFilters: { zz: [rule('100.64.0.9')] } });
  assert.deepEqual(
    nm.packetFilter().map((r) => r.SrcIPs?.[0]),
    ['*', '100.64.0.9'],
  );
  nm.apply({ PacketFilter: [rule('100.64.0.2')] });
  assert.deepEqual(
    nm.packetFilter().map((r) => r.SrcIPs?.[0]),
    ['100.64.0.2', '100.64.0.9'],
  );
  nm.apply({ PacketFilters: { zz: null } });
  assert.deepEqual(
    nm.packetFilter().map((r) => r.SrcIPs?.[0]),
    ['100.64.0.2'],
  );
  nm.apply({ PacketFilters: { '*': null, new: [] } });
  assert.deepEqual(nm.packetFilter(), [], 'an empty chunk: deny all');
});

test('UserProfiles are additive; hostile entries are skipped and counted', () => {
  const nm = initial();
  nm.apply({ UserProfiles: [{ ID: 2, LoginName: 'bob' }] });
  assert.equal(nm.users.size, 2);
  const hostileFull = {
    Peers: [node(10), { ID: 'x' }, null, 7, { Name: 'no id' }],
    UserProfiles: [{ LoginName: 'no id' }],
  } as unknown as MapResponse;
  assert.doesNotThrow(() => nm.apply(hostileFull));
  assert.deepEqual([...nm.peers.keys()], [10]);
  assert.equal(nm.skipped, 5);
  const hostileDelta = {
    PeersChanged: [{ ID: 1.5 }],
    PeersChangedPatch: [null, { NodeID: 'nope' }],
    Node: 'not a node',
  } as unknown as MapResponse;
  assert.doesNotThrow(() => nm.apply(hostileDelta));
  assert.equal(nm.skipped, 9);
  assert.equal(selfSummary(nm)?.id, 1, 'a malformed self node is ignored');
});

test('a relayed peer names its DERP region as the map does (none without a name)', async () => {
  const { peersWithPaths } = await import('../../main/engine/core/diagnostics.ts');
  const nm = new NetMap();
  nm.apply({
    Node: node(1),
    Peers: [node(2), node(3)],
    DERPMap: {
      Regions: {
        '999': { RegionID: 999, RegionName: 'Headscale Embedded DERP', Nodes: [] },
        '7': { RegionID: 7, Nodes: [] },
      },
    },
  });
  const region = (key: Uint8Array) => (key[31] === 2 ? 999 : 7);
  const dp = {
    peerPath: (key: Uint8Array) => ({ via: 'derp', derpRegion: region(key), lastHandshake: 0, rxBytes: 0, txBytes: 0 }),
  } as unknown as Parameters<typeof peersWithPaths>[1];
  const paths = peersWithPaths(nm, dp).map((p) => p.path);
  assert.equal(paths[0]?.derpRegionName, 'Headscale Embedded DERP');
  assert.equal(paths[1]?.derpRegion, 7);
  assert.equal(paths[1]?.derpRegionName, undefined);
});
