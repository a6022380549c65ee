// Trellis behind NATs (lab/nat.ts): each node sits on its own LAN behind a router namespace doing easy NAT
// (MASQUERADE), hard NAT (--random-fully) or blocking UDP; Headscale with its DERP and STUN is on the "internet".
// Every scenario is its own test with bounded waits; claims are subtests so a run says which layer is missing.
// Paths are reported as diagnostics and asserted where the topology decides them (datapath.md §9).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { type TestContext, test } from 'node:test';
import type { PeerPath } from '../../main/engine/protocol.ts';
import { buildNatLab, type NatLab, type NatSiteSpec } from './lab/nat.ts';
import { type Lab, withLab } from './lab/netns.ts';
import { pingFrom, startTrellisNode, type TrellisNode } from './lab/tailnet.ts';
import { startTailscaled, type Tailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';
import { tcpTransfer } from './lab/traffic.ts';

const MB = 1024 * 1024;
const TS_ENV = { TS_DEBUG_USE_DERP_HTTP: '1' };
const secs = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Checks the lab's preconditions; false when the test was skipped. */
function ready(t: TestContext): boolean {
  if (!requireTools(t, ['headscale', 'tailscaled', 'tailscale', 'ip', 'iptables', 'ping'])) return false;
  if (existsSync('/dev/net/tun')) return true;
  if (process.env.CI === 'true') throw new Error('NAT lab needs /dev/net/tun');
  t.skip('NAT lab needs /dev/net/tun');
  return false;
}

/** Runs claims as subtests; on any failure prints the daemons' output and the routers' NAT state once. */
function claims(t: TestContext, dump: () => Promise<string>) {
  const failed: string[] = [];
  return {
    async claim(name: string, fn: (st: TestContext) => Promise<void>): Promise<boolean> {
      let ok = false;
      await t.test(name, async (st) => {
        try {
          await fn(st);
          ok = true;
        } catch (e) {
          failed.push(name);
          throw e;
        }
      });
      return ok;
    },
    async report(): Promise<void> {
      if (failed.length > 0) console.error(`[nat lab] ${t.name}: failed: ${failed.join('; ')}\n${await dump()}`);
    },
  };
}

interface Side {
  label: string; // e.g. 'trellis a'
  host: NatLab['sites'][string]['host'];
  ip: string; // tailnet IPv4
}

/** Pings both ways at once (ICMP over the tunnel, 3 replies within deadlineS); throws naming the failed ones. */
async function pingBothWays(st: TestContext, x: Side, y: Side, deadlineS: number): Promise<void> {
  const t0 = Date.now();
  const runs = [
    { what: `${x.label} → ${y.label} (${y.ip})`, ns: x.host, to: y.ip },
    { what: `${y.label} → ${x.label} (${x.ip})`, ns: y.host, to: x.ip },
  ];
  const res = await Promise.all(
    runs.map(async (r) => {
      const ok = r.to !== '' && (await pingFrom(r.ns, r.to, { count: 3, deadlineS }));
      st.diagnostic(`ping ${r.what}: ${ok ? `ok after ${secs(t0)}` : 'FAILED'}`);
      return ok ? '' : r.what;
    }),
  );
  const bad = res.filter(Boolean);
  assert.deepEqual(bad, [], `no echo replies within ${deadlineS} s: ${bad.join(', ')}`);
}

/** A hashed TCP transfer each way (sequentially); throws listing what went wrong. */
async function transferBothWays(st: TestContext, x: Side, y: Side, bytes: number, timeoutMs: number): Promise<void> {
  const bad: string[] = [];
  const runs = [
    { what: `${x.label} → ${y.label}`, fromNs: x.host, toNs: y.host, toAddr: y.ip, port: 5001 },
    { what: `${y.label} → ${x.label}`, fromNs: y.host, toNs: x.host, toAddr: x.ip, port: 5002 },
  ];
  for (const { what, ...o } of runs) {
    try {
      const r = await tcpTransfer({ ...o, bytes, seed: o.port, timeoutMs });
      const mbps = (r.receivedBytes * 8) / 1e6 / Math.max(r.seconds, 1e-3);
      st.diagnostic(`tcp ${what}: ${r.receivedBytes} bytes in ${r.seconds.toFixed(2)} s (${mbps.toFixed(0)} Mbit/s)`);
      if (r.receivedBytes !== bytes) bad.push(`${what}: received ${r.receivedBytes} of ${bytes} bytes`);
      else if (r.receivedSha256 !== r.sentSha256) bad.push(`${what}: sha256 differs`);
    } catch (e) {
      bad.push(`${what}: ${(e as Error).message.slice(0, 1_500)}`);
    }
  }
  assert.deepEqual(bad, [], bad.join('\n'));
}

/** Trellis's path to the peer with tailnet address ip (undefined while it has none). */
async function trellisPath(node: TrellisNode, ip: string): Promise<PeerPath | undefined> {
  return (await node.status()).peers.find((p) => p.addresses.includes(ip))?.path;
}

/** Polls (every 250 ms, ≤ ms) until Trellis reports a direct path to ip; the ms it took, or null. */
async function msUntilDirect(node: TrellisNode, ip: string, ms: number): Promise<number | null> {
  const t0 = Date.now();
  for (let i = 0; i < Math.ceil(ms / 250) + 1 && Date.now() - t0 <= ms; i++) {
    const p = await trellisPath(node, ip).catch(() => undefined);
    if (p?.via === 'direct') return Date.now() - t0;
    await delay(250);
  }
  return null;
}

const show = (p: PeerPath | undefined): string => JSON.stringify(p ?? null);

/** `trellis ping <ip> --count 3` (disco ping, direct or DERP) for the diagnostics: its last line. */
async function trellisPing(node: TrellisNode, ip: string): Promise<string> {
  const r = await node.cli(['ping', ip, '--count', '3'], 20_000);
  const last = `${r.stdout}${r.stderr}`.trim().split('\n').at(-1) ?? '';
  return `${r.code === 0 ? '' : `exit ${r.code ?? r.signal}: `}${last}`;
}

/** Builds the NAT lab and one node per site; tailscaled where `ts` names the site, Trellis elsewhere. */
async function setup(lab: Lab, specs: NatSiteSpec[], ts?: string) {
  const nl = await buildNatLab(lab, specs);
  const { headscale: hs, authKey } = nl.tailnet;
  const trellis: Record<string, TrellisNode> = {};
  let tsd: Tailscaled | undefined;
  await Promise.all(
    specs.map(async ({ name }) => {
      const host = nl.site(name).host;
      if (name === ts) {
        tsd = await startTailscaled(host, { name, env: TS_ENV });
        await tsd.up({ loginServer: hs.url, authKey, hostname: `ts-${name}`, timeoutS: 30 });
      } else {
        trellis[name] = await startTrellisNode(host, {
          hostname: `trellis-${name}`,
          loginServer: hs.url,
          authKey,
          upTimeoutS: 30,
        });
      }
    }),
  );
  const dump = async (): Promise<string> => {
    const parts: string[] = [];
    for (const [name, n] of Object.entries(trellis)) {
      parts.push(`--- trellis ${name} status:\n${JSON.stringify(await n.status().catch((e: Error) => e.message))}`);
      parts.push(`--- trellis ${name} daemon output (tail):\n${n.output().slice(-8_000)}`);
    }
    if (tsd) parts.push(`--- tailscaled ${tsd.name} output (tail):\n${tsd.output().slice(-6_000)}`);
    for (const s of Object.values(nl.sites)) parts.push(await s.natState());
    return parts.join('\n');
  };
  return { nl, trellis, tsd, dump };
}

function trellisSide(nl: NatLab, nodes: Record<string, TrellisNode>, name: string, ip: string): Side {
  if (!nodes[name]) throw new Error(`no trellis node at site ${name}`);
  return { label: `trellis ${name}`, host: nl.site(name).host, ip };
}

test('nat 1: Trellis and tailscaled, both behind easy NAT: traffic, direct path', { timeout: 60_000 }, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const { nl, trellis, tsd, dump } = await setup(
      lab,
      [
        { name: 'a', nat: 'easy' },
        { name: 'b', nat: 'easy' },
      ],
      'b',
    );
    const tr = trellis.a;
    if (!tr || !tsd) throw new Error('setup did not start both nodes');
    const t0 = Date.now();
    const [ipA, ipB] = [(await tr.ip()).v4, (await tsd.ip()).v4];
    const A = trellisSide(nl, trellis, 'a', ipA);
    const B: Side = { label: 'tailscaled b', host: nl.site('b').host, ip: ipB };
    t.diagnostic(
      `trellis a ${ipA} behind ${nl.site('a').publicAddr}; tailscaled b ${ipB} behind ${nl.site('b').publicAddr}`,
    );
    const { claim, report } = claims(t, dump);

    const pinged = await claim('1. ICMP both ways over the tailnet (≤ 20 s)', (st) => pingBothWays(st, A, B, 20));
    await claim('2. both sides report a direct path between the NATs’ public addresses (≤ 15 s)', async (st) => {
      const pubA = nl.site('a').publicAddr;
      const pubB = nl.site('b').publicAddr;
      // both views polled together (250 ms, ≤ 15 s): Trellis's path and tailscaled's trusted direct address
      const tsDirect = async (): Promise<number | null> => {
        const t1 = Date.now();
        for (let i = 0; i < 60 && Date.now() - t1 <= 15_000; i++) {
          const peer = (await tsd.status().catch(() => null))?.peers.find((p) => p.TailscaleIPs.includes(ipA));
          if (peer?.CurAddr.startsWith(`${pubA}:`)) return Date.now() - t1;
          await delay(250);
        }
        return null;
      };
      const [msTr, msTs] = await Promise.all([msUntilDirect(tr, ipB, 15_000), tsDirect()]);
      const when = (ms: number | null) => (ms === null ? 'not within 15 s' : `after ${ms} ms`);
      st.diagnostic(`direct: trellis ${when(msTr)}, tailscaled ${when(msTs)} (polls began ${secs(t0)} after login)`);
      const mine = await trellisPath(tr, ipB);
      const theirs = (await tsd.status()).peers.find((p) => p.TailscaleIPs.includes(ipA));
      const pong = await tsd.ping(ipA, { count: 3, timeoutS: 2 });
      st.diagnostic(`trellis a → b path: ${show(mine)}`);
      st.diagnostic(`tailscaled b → a: CurAddr=${theirs?.CurAddr || "''"} Relay=${theirs?.Relay || "''"}`);
      st.diagnostic(`tailscale ping b → a: ${pong.ok ? `via ${pong.via} ${pong.endpoint ?? ''}` : 'no pong'}`);
      st.diagnostic(`trellis ping a → b: ${await trellisPing(tr, ipB)}`);
      const bad: string[] = [];
      if (mine?.via !== 'direct' || !mine.endpoint?.startsWith(`${pubB}:`)) {
        bad.push(`Trellis path to tailscaled is ${show(mine)}, want direct to ${pubB}:* (at ${secs(t0)})`);
      }
      if (msTs === null) bad.push(`tailscaled CurAddr never ${pubA}:* within 15 s (now '${theirs?.CurAddr}')`);
      if (pong.via !== 'direct') bad.push(`tailscale ping went ${pong.via}:\n${pong.output.trim()}`);
      assert.deepEqual(bad, [], `easy↔easy NAT should go direct (STUN endpoints + disco):\n${bad.join('\n')}`);
    });
    await claim('3. 20 MB over TCP each way, sha256 intact', async (st) => {
      if (!pinged) assert.fail('not attempted: no ICMP both ways in claim 1');
      await transferBothWays(st, A, B, 20 * MB, 20_000);
      st.diagnostic(`trellis path after the transfers: ${show(await trellisPath(tr, ipB))}`);
    });
    await report();
  });
});

test('nat 2: Trellis behind a UDP-blocking NAT, tailscaled on easy NAT: via DERP', { timeout: 60_000 }, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const { nl, trellis, tsd, dump } = await setup(
      lab,
      [
        { name: 'a', nat: 'udp-blocked' },
        { name: 'b', nat: 'easy' },
      ],
      'b',
    );
    const tr = trellis.a;
    if (!tr || !tsd) throw new Error('setup did not start both nodes');
    const [ipA, ipB] = [(await tr.ip()).v4, (await tsd.ip()).v4];
    const A = trellisSide(nl, trellis, 'a', ipA);
    const B: Side = { label: 'tailscaled b', host: nl.site('b').host, ip: ipB };
    const { claim, report } = claims(t, dump);

    const pinged = await claim('1. ICMP both ways over the tailnet (≤ 20 s)', (st) => pingBothWays(st, A, B, 20));
    await claim('2. 5 MB over TCP each way, sha256 intact', async (st) => {
      if (!pinged) assert.fail('not attempted: no ICMP both ways in claim 1');
      await transferBothWays(st, A, B, 5 * MB, 20_000);
    });
    await claim('3. both sides report DERP', async (st) => {
      const mine = await trellisPath(tr, ipB);
      const theirs = (await tsd.status()).peers.find((p) => p.TailscaleIPs.includes(ipA));
      st.diagnostic(`trellis a → b path: ${show(mine)}`);
      st.diagnostic(`tailscaled b → a: CurAddr=${theirs?.CurAddr || "''"} Relay=${theirs?.Relay || "''"}`);
      assert.equal(mine?.via, 'derp', `Trellis path with UDP blocked: ${show(mine)}`);
      assert.equal(theirs?.CurAddr, '', 'tailscaled cannot have a direct path to a UDP-blocked peer');
    });
    await report();
  });
});

test('nat 4: Trellis and Trellis, both behind easy NAT: traffic; time to direct', { timeout: 60_000 }, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const { nl, trellis, dump } = await setup(lab, [
      { name: 'a', nat: 'easy' },
      { name: 'b', nat: 'easy' },
    ]);
    const [ta, tb] = [trellis.a, trellis.b];
    if (!ta || !tb) throw new Error('setup did not start both nodes');
    const t0 = Date.now();
    const A = trellisSide(nl, trellis, 'a', (await ta.ip()).v4);
    const B = trellisSide(nl, trellis, 'b', (await tb.ip()).v4);
    const { claim, report } = claims(t, dump);

    await claim('1. ICMP both ways over the tailnet (≤ 20 s)', (st) => pingBothWays(st, A, B, 20));
    await claim('2. (diagnostic) time until Trellis reports a direct path (≤ 15 s)', async (st) => {
      const [ma, mb] = await Promise.all([msUntilDirect(ta, B.ip, 15_000), msUntilDirect(tb, A.ip, 15_000)]);
      const fmt = (ms: number | null) => (ms === null ? 'not direct within 15 s' : `direct after ${ms} ms`);
      st.diagnostic(`trellis a → b: ${fmt(ma)}, path ${show(await trellisPath(ta, B.ip))}`);
      st.diagnostic(`trellis b → a: ${fmt(mb)}, path ${show(await trellisPath(tb, A.ip))}`);
      st.diagnostic(`trellis ping a → b: ${await trellisPing(ta, B.ip)}`);
      st.diagnostic(`nodes up ${secs(t0)} ago`);
    });
    await report();
  });
});

test('nat 3: Trellis and Trellis, both behind hard NAT: via DERP', { timeout: 60_000 }, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const { nl, trellis, dump } = await setup(lab, [
      { name: 'a', nat: 'hard' },
      { name: 'b', nat: 'hard' },
    ]);
    const [ta, tb] = [trellis.a, trellis.b];
    if (!ta || !tb) throw new Error('setup did not start both nodes');
    const A = trellisSide(nl, trellis, 'a', (await ta.ip()).v4);
    const B = trellisSide(nl, trellis, 'b', (await tb.ip()).v4);
    const { claim, report } = claims(t, dump);
    const pinged = await claim('1. ICMP both ways over the tailnet (≤ 20 s)', (st) => pingBothWays(st, A, B, 20));
    await claim('2. 5 MB over TCP each way, sha256 intact', async (st) => {
      if (!pinged) assert.fail('not attempted: no ICMP both ways in claim 1');
      await transferBothWays(st, A, B, 5 * MB, 20_000);
    });
    await claim('3. both report DERP', async (st) => {
      const pa = await trellisPath(ta, B.ip);
      const pb = await trellisPath(tb, A.ip);
      st.diagnostic(`trellis a → b: ${show(pa)}; trellis b → a: ${show(pb)}`);
      assert.deepEqual([pa?.via, pb?.via], ['derp', 'derp'], `hard↔hard NAT paths: a ${show(pa)}, b ${show(pb)}`);
    });
    await report();
  });
});
