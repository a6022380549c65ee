// The path matrix: Trellis (node a) with an official tailscaled, and with another Trellis (node b), in each
// topology — the same LAN; both behind easy NAT (MASQUERADE); a's NAT dropping all UDP; both behind hard NAT
// (--random-fully). In each: ICMP both ways, 20 MB of TCP each way with equal sha256, and the path both sides
// report — direct between the addresses the topology exposes, or DERP — with `tailscale status`/`tailscale ping`
// and `trellis ping` agreeing. Time to the direct path is reported. Lab: lab/nat.ts and lab/tailnet.ts.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { PeerPath } from '../../main/engine/protocol.ts';
import type { NatKind } from './lab/nat.ts';
import type { Lab, Namespace } from './lab/netns.ts';
import { withLab } from './lab/netns.ts';
import {
  claims,
  delay,
  MB,
  msUntilDirect,
  pingBothWays,
  ready,
  type Side,
  setup,
  show,
  TS_ENV,
  transferBothWays,
  trellisPath,
  trellisPing,
} from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode, type TrellisNode } from './lab/tailnet.ts';
import { startTailscaled, type Tailscaled } from './lab/tailscaled.ts';

type Peer = 'tailscaled' | 'trellis';

interface Topology {
  id: string;
  title: string;
  expect: 'direct' | 'derp';
  /** NAT kinds of sites a and b; absent = both hosts on one LAN. */
  nat?: [NatKind, NatKind];
}

const TOPOLOGIES: Topology[] = [
  { id: 'lan', title: 'same LAN', expect: 'direct' },
  { id: 'easy', title: 'both behind easy NAT', expect: 'direct', nat: ['easy', 'easy'] },
  { id: 'udp', title: 'a behind a NAT that drops UDP, b on easy NAT', expect: 'derp', nat: ['udp-blocked', 'easy'] },
  { id: 'hard', title: 'both behind hard NAT', expect: 'derp', nat: ['hard', 'hard'] },
];

interface World {
  a: TrellisNode;
  bTrellis?: TrellisNode;
  bTs?: Tailscaled;
  host(name: 'a' | 'b'): Namespace;
  /** The address a direct path to this node must use: its LAN address, or its NAT's public one. */
  seenAs(name: 'a' | 'b'): string;
  dump(): Promise<string>;
}

async function sameLan(lab: Lab, peer: Peer): Promise<World> {
  const tn = await buildTailnetLab(lab, ['a', 'b']);
  const [ha, hb] = [tn.hosts.a, tn.hosts.b];
  if (!ha || !hb) throw new Error('tailnet lab without hosts a and b');
  const login = { loginServer: tn.headscale.url, authKey: tn.authKey, upTimeoutS: 30 };
  const [a, b] = await Promise.all([
    startTrellisNode(ha, { hostname: 'trellis-a', ...login }),
    peer === 'trellis'
      ? startTrellisNode(hb, { hostname: 'trellis-b', ...login })
      : (async () => {
          const d = await startTailscaled(hb, { name: 'b', env: TS_ENV });
          await d.up({ loginServer: login.loginServer, authKey: login.authKey, hostname: 'ts-b', timeoutS: 30 });
          return d;
        })(),
  ]);
  return {
    a,
    ...(peer === 'trellis' ? { bTrellis: b as TrellisNode } : { bTs: b as Tailscaled }),
    host: (n) => (n === 'a' ? ha : hb),
    seenAs: (n) => tn.addr(n),
    dump: async () => lab.diagnostics(),
  };
}

async function natWorld(lab: Lab, peer: Peer, nat: [NatKind, NatKind]): Promise<World> {
  const sites = [
    { name: 'a', nat: nat[0] },
    { name: 'b', nat: nat[1] },
  ];
  const { nl, trellis, tsd, dump } = await setup(lab, sites, peer === 'tailscaled' ? 'b' : undefined);
  const a = trellis.a;
  if (!a) throw new Error('setup did not start trellis a');
  return {
    a,
    ...(trellis.b ? { bTrellis: trellis.b } : {}),
    ...(tsd ? { bTs: tsd } : {}),
    host: (n) => nl.site(n).host,
    seenAs: (n) => nl.site(n).publicAddr,
    dump,
  };
}

/** tailscaled's view of its peer with tailnet address ip, polled (≤ ms) until it matches want. */
async function tsPathTo(ts: Tailscaled, ip: string, want: 'direct' | 'derp', ms: number): Promise<string> {
  let cur = '';
  for (let i = 0, t0 = Date.now(); i < 100 && Date.now() - t0 <= ms; i++) {
    const p = (await ts.status().catch(() => null))?.peers.find((x) => x.TailscaleIPs.includes(ip));
    cur = p?.CurAddr ?? '';
    if ((want === 'direct') === (cur !== '')) break;
    await delay(250);
  }
  return cur;
}

async function checkPaths(st: TestContext, w: World, topo: Topology, ipA: string, ipB: string): Promise<void> {
  const bad: string[] = [];
  const direct = topo.expect === 'direct';
  const agrees = (p: PeerPath | undefined, to: 'a' | 'b'): boolean =>
    p?.via === topo.expect && (!direct || !!p.endpoint?.startsWith(`${w.seenAs(to)}:`));

  const ms = direct ? await msUntilDirect(w.a, ipB, 15_000) : null;
  if (direct) st.diagnostic(`trellis a: direct ${ms === null ? 'not within 15 s' : `${ms} ms after the pings`}`);
  const mine = await trellisPath(w.a, ipB);
  st.diagnostic(`trellis a → b: ${show(mine)}`);
  if (!agrees(mine, 'b')) bad.push(`trellis a → b is ${show(mine)}, want ${topo.expect} (to ${w.seenAs('b')})`);
  const ping = await trellisPing(w.a, ipB);
  st.diagnostic(`trellis ping a → b: ${ping}`);
  const pingVia = / via (DERP\(\d+\)|[\d.]+:\d+)/.exec(ping)?.[1] ?? '';
  if (direct ? !pingVia.startsWith(`${w.seenAs('b')}:`) : !pingVia.startsWith('DERP'))
    bad.push(`trellis ping: ${ping}`);

  if (w.bTrellis) {
    if (direct) await msUntilDirect(w.bTrellis, ipA, 15_000);
    const theirs = await trellisPath(w.bTrellis, ipA);
    st.diagnostic(`trellis b → a: ${show(theirs)}`);
    if (!agrees(theirs, 'a')) bad.push(`trellis b → a is ${show(theirs)}, want ${topo.expect}`);
  }
  if (w.bTs) {
    const cur = await tsPathTo(w.bTs, ipA, topo.expect, 15_000);
    const pong = await w.bTs.ping(ipA, { count: 3, timeoutS: 2 });
    st.diagnostic(`tailscaled b → a: CurAddr=${cur || "''"}; tailscale ping: ${pong.via} ${pong.endpoint ?? ''}`);
    if (direct ? !cur.startsWith(`${w.seenAs('a')}:`) : cur !== '') bad.push(`tailscale status CurAddr=${cur}`);
    if (pong.via !== topo.expect) bad.push(`tailscale ping went ${pong.via}:\n${pong.output.trim()}`);
  }
  assert.deepEqual(bad, [], bad.join('\n'));
}

for (const topo of TOPOLOGIES) {
  for (const peer of ['tailscaled', 'trellis'] as const) {
    test(`paths ${topo.id}: Trellis and ${peer}, ${topo.title} → ${topo.expect}`, { timeout: 90_000 }, async (t) => {
      if (!ready(t)) return;
      await withLab(t, async (lab) => {
        const w = topo.nat ? await natWorld(lab, peer, topo.nat) : await sameLan(lab, peer);
        const b = w.bTrellis ?? w.bTs;
        if (!b) throw new Error('no node b');
        const [ipA, ipB] = [(await w.a.ip()).v4, (await b.ip()).v4];
        const A: Side = { label: 'trellis a', host: w.host('a'), ip: ipA };
        const B: Side = { label: `${peer} b`, host: w.host('b'), ip: ipB };
        const { claim, report } = claims(t, () => w.dump());
        const pinged = await claim('1. ICMP both ways (≤ 20 s)', (st) => pingBothWays(st, A, B, 20));
        await claim(`2. both sides report ${topo.expect}; trellis ping and tailscale agree`, (st) =>
          checkPaths(st, w, topo, ipA, ipB),
        );
        await claim('3. 20 MB over TCP each way, sha256 intact', async (st) => {
          if (!pinged) assert.fail('not attempted: no ICMP both ways in claim 1');
          await transferBothWays(st, A, B, 20 * MB, 30_000);
          st.diagnostic(`trellis a → b after the transfers: ${show(await trellisPath(w.a, ipB))}`);
        });
        await report();
      });
    });
  }
}
