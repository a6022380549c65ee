// Trellis behind NATs (lab/nat.ts): each node sits on its own LAN behind a router namespace doing easy NAT
// (MASQUERADE), hard NAT (--random-fully) or blocking UDP; Headscale with its DERP and STUN is on the "internet".
// Every scenario is its own test with bounded waits; claims are subtests so a run says which layer is missing.
// Paths are reported as diagnostics and asserted where the topology decides them (datapath.md §9).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withLab } from './lab/netns.ts';
import {
  claims,
  delay,
  MB,
  msUntilDirect,
  pingBothWays,
  ready,
  type Side,
  secs,
  setup,
  show,
  transferBothWays,
  trellisPath,
  trellisPing,
  trellisSide,
} from './lab/scenario.ts';

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
