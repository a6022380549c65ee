// Hostile control data (issue 12, findings 6 and 7): fields of the wrong shape are dropped or filtered where they
// enter the netmap, and counted; a StableID that could lead a path out of the inbox is dropped; a peer whose
// Hostinfo.Services is not an array no longer fails every status call.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { NetMap } from '../../main/engine/control/netmap.ts';
import { INVALID_TAG, STABLE_ID, sanitizeNode } from '../../main/engine/control/sanitize.ts';
import type { MapResponse, TailNode } from '../../main/engine/control/tailcfg.ts';
import { peerSummaries, selfSummary } from '../../main/engine/core/status.ts';
import { createEngine } from '../../main/engine/engine.ts';
import { FILE_SHARING_CAP, Taildrop } from '../../main/engine/taildrop/service.ts';

function node(id: number, extra: Record<string, unknown> = {}): TailNode {
  return {
    ID: id,
    StableID: `n${id}CNTRL`,
    Name: `host${id}.tailnet.test.`,
    User: 1,
    Addresses: [`100.64.0.${id}/32`],
    Hostinfo: { OS: 'linux', Hostname: `host${id}`, Services: [{ Proto: 'peerapi4', Port: 40000 + id }] },
    ...extra,
  } as TailNode;
}

const hostile = (m: Record<string, unknown>) => m as unknown as MapResponse;

function netmap(peers: TailNode[]): NetMap {
  const nm = new NetMap();
  nm.apply(hostile({ Node: node(1, { CapMap: { [FILE_SHARING_CAP]: null } }), Peers: peers }));
  return nm;
}

describe('netmap field shapes', () => {
  test('StableID: letters, digits, _ and -, at most 64; anything else is dropped (the decimal ID stands in)', () => {
    for (const ok of ['nDUXUxB8CNTRL', 'a', '_-_', 'x'.repeat(64), '12345']) assert.ok(STABLE_ID.test(ok), ok);
    const nm = netmap([
      node(2, { StableID: 'x/../../..' }),
      node(3, { StableID: 'x'.repeat(65) }),
      node(4, { StableID: '' }),
      node(5, { StableID: 'a.b' }),
      node(6, { StableID: 42 }),
      node(7, { StableID: 'fine_ID-7' }),
    ]);
    for (const id of [2, 3, 4, 5, 6]) assert.equal(nm.peers.get(id)?.StableID, undefined, `peer ${id}`);
    assert.equal(nm.peers.get(7)?.StableID, 'fine_ID-7');
    assert.equal(nm.skipped, 5);
    assert.equal(peerSummaries(nm).length, 6, 'the peers themselves stay');
  });

  test('Hostinfo.Services must be an array of {Proto: string, Port: 0..65535}', () => {
    const nm = netmap([
      node(2, { Hostinfo: { OS: 'linux', Services: 'x' } }),
      node(3, { Hostinfo: { OS: 'linux', Services: {} } }),
      node(4, {
        Hostinfo: {
          Services: [
            { Proto: 'peerapi4', Port: 70000 },
            null,
            'x',
            { Proto: 7, Port: 1 },
            { Proto: 'peerapi4', Port: 41 },
          ],
        },
      }),
    ]);
    assert.equal(nm.peers.get(2)?.Hostinfo?.Services, undefined);
    assert.equal(nm.peers.get(3)?.Hostinfo?.Services, undefined);
    assert.deepEqual(nm.peers.get(4)?.Hostinfo?.Services, [{ Proto: 'peerapi4', Port: 41 }]);
    assert.equal(nm.peers.get(2)?.Hostinfo?.OS, 'linux', 'the rest of Hostinfo stays');
    assert.equal(nm.skipped, 3);
  });

  test('lists keep their strings; wrong scalars, Hostinfo and CapMap are dropped; each fix is counted', () => {
    const n = node(2, {
      Name: ['x'],
      User: '1',
      Key: 5,
      Online: 'yes',
      LastSeen: null,
      HomeDERP: -1,
      Addresses: [7, '100.64.0.2/32', { a: 1 }],
      AllowedIPs: 'everything',
      Endpoints: ['192.0.2.1:41641', null],
      CapMap: { ok: null, good: [], bad: 'x' },
      Hostinfo: { OS: { x: 1 }, Hostname: 'h', NetInfo: 'x', RoutableIPs: [1] },
    });
    assert.equal(sanitizeNode(n), 12);
    assert.equal(n.Name, undefined);
    assert.equal(n.User, undefined);
    assert.equal(n.Key, undefined);
    assert.equal(n.Online, undefined);
    assert.equal(n.LastSeen, null, 'null is a valid LastSeen');
    assert.equal(n.HomeDERP, undefined);
    assert.deepEqual(n.Addresses, ['100.64.0.2/32']);
    assert.equal(n.AllowedIPs, undefined);
    assert.deepEqual(n.Endpoints, ['192.0.2.1:41641']);
    assert.deepEqual(n.CapMap, { ok: null, good: [] });
    assert.deepEqual(n.Hostinfo, { Hostname: 'h', RoutableIPs: [] });
    assert.equal(sanitizeNode(node(3, { Hostinfo: 'str', CapMap: [] })), 2);
    assert.equal(sanitizeNode(node(4)), 0, 'a well-formed node is left alone');
  });

  test('a malformed Tags makes the node tagged (no Taildrop to or from it), never untagged', () => {
    const nm = netmap([node(2, { Tags: 'tag:server' }), node(3, { Tags: [5] }), node(4, { Tags: ['tag:a'] }), node(5)]);
    assert.deepEqual(nm.peers.get(2)?.Tags, [INVALID_TAG]);
    assert.deepEqual(nm.peers.get(3)?.Tags, [INVALID_TAG]);
    assert.deepEqual(nm.peers.get(4)?.Tags, ['tag:a']);
    const td = new Taildrop(tmpdir(), { log: () => {}, onReceived: () => {} });
    td.setNetMap(nm);
    assert.deepEqual(
      td.targets().map((t) => t.id),
      [5],
    );
  });

  test('deltas are checked too: patches, users, DERP nodes', () => {
    const nm = netmap([node(2)]);
    nm.apply(hostile({ PeersChangedPatch: [{ NodeID: 2, DERPRegion: 'x', Endpoints: ['1.2.3.4:5', 6], CapMap: 7 }] }));
    const p = nm.peers.get(2);
    assert.equal(p?.HomeDERP, undefined);
    assert.deepEqual(p?.Endpoints, ['1.2.3.4:5']);
    nm.apply(hostile({ UserProfiles: [{ ID: 1, LoginName: { evil: true }, DisplayName: 'Alice' }] }));
    assert.equal(nm.users.get(1)?.LoginName, undefined);
    assert.equal(peerSummaries(nm)[0]?.user, 'Alice');
    nm.apply(
      hostile({
        DERPMap: {
          Regions: {
            '1': { RegionID: 1, Nodes: [{ HostName: 'derp.test', DERPPort: 'x', IPv4: 5 }, { HostName: 7 }, 'x'] },
            '2': { RegionID: 'two' },
          },
        },
      }),
    );
    assert.deepEqual(nm.derpMap.Regions?.['1']?.Nodes, [{ HostName: 'derp.test' }]);
    assert.equal(nm.derpMap.Regions?.['2'], undefined);
    assert.equal(nm.skipped, 2 + 1 + 3 + 1);
  });
});

describe('status with a hostile peer', () => {
  test('Services "x" or {}: every peer listed, Taildrop targets computed', () => {
    const nm = netmap([
      node(2, { Hostinfo: { OS: 'linux', Services: 'x' } }),
      node(3, { Hostinfo: { OS: 'linux', Services: {} } }),
      node(4),
    ]);
    assert.deepEqual(
      peerSummaries(nm).map((p) => [p.id, p.name, p.os]),
      [
        [2, 'host2', 'linux'],
        [3, 'host3', 'linux'],
        [4, 'host4', 'linux'],
      ],
    );
    const td = new Taildrop(tmpdir(), { log: () => {}, onReceived: () => {} });
    td.setNetMap(nm);
    assert.deepEqual(
      td.targets().map((t) => [t.id, t.base]),
      [[4, 'http://100.64.0.4:40004']],
    );
  });

  test('an entry that got past the checks costs only its own summary', () => {
    const nm = netmap([node(2)]);
    nm.peers.set(3, { ID: 3, Addresses: [{}], Name: 'x.' } as unknown as TailNode); // not through apply()
    const peers = peerSummaries(nm);
    assert.deepEqual(
      peers.map((p) => [p.id, p.name]),
      [
        [2, 'host2'],
        [3, 'node-3'],
      ],
    );
    nm.self = { ID: 1, Addresses: [null] } as unknown as TailNode;
    assert.equal(selfSummary(nm)?.id, 1);
  });

  test('the engine status call lists a peer whose Services is "x", and one no check foresaw', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-hostile-'));
    const engine = createEngine();
    t.after(async () => {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    });
    await engine.handle('start', { stateDir: dir });
    // The netmap as a control server would have sent it (no server in this test).
    const nm = (engine as unknown as { netmap: NetMap }).netmap;
    nm.apply(hostile({ Node: node(1), Peers: [node(2, { Hostinfo: { Services: 'x' } }), node(3)] }));
    nm.peers.set(4, { ID: 4, Addresses: [{}] } as unknown as TailNode); // not through apply()
    const st = await engine.handle('status', {});
    assert.deepEqual(
      st.peers.map((p) => p.id),
      [2, 3, 4],
    );
    assert.equal(st.self?.id, 1);
  });
});
