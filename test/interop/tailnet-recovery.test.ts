// Recovery after the network comes back (lab/nat.ts): Trellis and the official tailscaled, each behind its own
// NAT router, Headscale with its embedded DERP and STUN on the "internet". Each scenario breaks one thing — the
// Trellis site's WAN link, Headscale (control), Headscale's DERP — and then requires ICMP both ways within
// 10 s of it being back. The seconds from "back" to the first echo reply each way are reported as diagnostics.
// tailscaled reaches Headscale through NatSite.loopbackControl, so that it too reconnects after a restart.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { PeerPath } from '../../main/engine/protocol.ts';
import type { Headscale } from './lab/headscale.ts';
import { buildNatLab, type NatKind } from './lab/nat.ts';
import { type Lab, withLab } from './lab/netns.ts';
import { claims, delay, ready, type Side, show, TS_ENV } from './lab/scenario.ts';
import { pingFrom, startTrellisNode, type TrellisNode } from './lab/tailnet.ts';
import { startTailscaled, type Tailscaled, type TsPeer } from './lab/tailscaled.ts';

const RECOVERY_S = 10; // the requirement: traffic flows again within 10 s of the network coming back
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * Pings both ways at once (every 0.2 s) until one echo reply each, at most until t0 + withinS; the ms from t0 to
 * each first reply, null where none came.
 */
async function firstEcho(
  x: Side,
  y: Side,
  t0: number,
  withinS: number,
): Promise<{ what: string; ms: number | null }[]> {
  const runs = [
    { what: `${x.label} → ${y.label}`, ns: x.host, to: y.ip },
    { what: `${y.label} → ${x.label}`, ns: y.host, to: x.ip },
  ];
  return Promise.all(
    runs.map(async (r) => {
      const left = Math.floor((t0 + withinS * 1000 - Date.now()) / 1000);
      const ok = left >= 1 && (await pingFrom(r.ns, r.to, { count: 1, deadlineS: left }));
      return { what: r.what, ms: ok ? Date.now() - t0 : null };
    }),
  );
}

/** The claim: an echo reply each way within withinS of t0 (e.g. network back); times as diagnostics. */
async function recovered(
  st: TestContext,
  x: Side,
  y: Side,
  t0: number,
  withinS: number,
  since = 'back',
): Promise<void> {
  const res = await firstEcho(x, y, t0, withinS);
  for (const r of res)
    st.diagnostic(`first echo ${r.what}: ${r.ms === null ? 'NONE' : `${secs(r.ms)} after ${since}`}`);
  const bad = res.filter((r) => r.ms === null).map((r) => r.what);
  assert.deepEqual(bad, [], `no echo reply within ${withinS} s of ${since}: ${bad.join(', ')}`);
}

/** The claim that an outage is real: neither way gets an echo reply within deadlineS. */
async function noEcho(st: TestContext, x: Side, y: Side, deadlineS: number): Promise<void> {
  const res = await firstEcho(x, y, Date.now(), deadlineS);
  const through = res.filter((r) => r.ms !== null).map((r) => r.what);
  st.diagnostic(`during the outage: ${through.length ? `echo ${through.join(', ')}` : 'no echo either way'}`);
  assert.deepEqual(through, [], 'packets still got through: the outage did not cut this path');
}

/** The claim that traffic is steady: 3 echo replies each way within deadlineS (pings every 0.2 s). */
async function steady(st: TestContext, x: Side, y: Side, deadlineS: number): Promise<void> {
  const runs = [
    { what: `${x.label} → ${y.label}`, ns: x.host, to: y.ip },
    { what: `${y.label} → ${x.label}`, ns: y.host, to: x.ip },
  ];
  const ok = await Promise.all(runs.map((r) => pingFrom(r.ns, r.to, { count: 3, deadlineS })));
  const bad = runs.filter((_, i) => !ok[i]).map((r) => r.what);
  st.diagnostic(`3 replies each way within ${deadlineS} s: ${bad.length ? `FAILED ${bad.join(', ')}` : 'ok'}`);
  assert.deepEqual(bad, [], `fewer than 3 echo replies within ${deadlineS} s: ${bad.join(', ')}`);
}

/**
 * The claim that Trellis's map stream is live: renames the peer with tailnet address ip in Headscale and waits
 * (≤ withinMs) until Trellis's status shows the new name. `back` is when control came back, for the diagnostic.
 */
async function renameReaches(
  st: TestContext,
  hs: Headscale,
  tr: TrellisNode,
  ip: string,
  name: string,
  back: number,
  withinMs: number,
): Promise<void> {
  const node = (await hs.nodes()).find((n) => n.ipAddresses.includes(ip));
  if (!node) assert.fail(`Headscale lists no node with ${ip}`);
  const t0 = Date.now();
  await hs.renameNode(node.id, name);
  const s = await tr.waitFor((x) => x.peers.some((p) => p.addresses.includes(ip) && p.name === name), withinMs);
  const peer = s.peers.find((p) => p.addresses.includes(ip));
  const now = Date.now();
  st.diagnostic(
    `trellis sees the peer as ${JSON.stringify(peer?.name)} ${secs(now - t0)} after the rename, ` +
      `${secs(now - back)} after control was back; health ${JSON.stringify(s.health.map((h) => h.code))}`,
  );
  assert.equal(peer?.name, name, `the rename did not reach Trellis within ${withinMs} ms: no live map stream`);
}

/** Trellis's path to the peer with tailnet address ip (undefined while it has none). */
async function trellisPath(node: TrellisNode, ip: string): Promise<PeerPath | undefined> {
  return (await node.status()).peers.find((p) => p.addresses.includes(ip))?.path;
}

/** tailscaled's view of the peer with tailnet address ip. */
async function tsPeer(tsd: Tailscaled, ip: string): Promise<TsPeer | undefined> {
  return (await tsd.status()).peers.find((p) => p.TailscaleIPs.includes(ip));
}

/** Whether tailscaled got back to control after a restart: waits (≤ 5 s) for the rename to reach its Self. */
async function tsControlView(tsd: Tailscaled, ip: string, name: string): Promise<string> {
  const ms = await msUntil(5_000, async () => (await tsd.status()).Self?.DNSName.startsWith(`${name}.`) === true);
  const s = await tsd.status().catch(() => null);
  const peer = s?.peers.find((p) => p.TailscaleIPs.includes(ip));
  const renamed = ms === null ? 'rename not seen within 5 s more' : 'renamed';
  return `self ${s?.Self?.DNSName ?? '?'} (${renamed}), trellis online=${peer?.Online ?? '?'}`;
}

/** Polls pred (every 250 ms, errors count as false) until it holds, at most ms; the ms it took, or null. */
async function msUntil(ms: number, pred: () => Promise<boolean>): Promise<number | null> {
  const t0 = Date.now();
  for (let i = 0; i < Math.ceil(ms / 250) + 1 && Date.now() - t0 <= ms; i++) {
    if (await pred().catch(() => false)) return Date.now() - t0;
    await delay(250);
  }
  return null;
}

/**
 * The claim that both sides went direct (≤ ms): Trellis's path to the peer and tailscaled's CurAddr (the NAT's
 * public address of the Trellis site). Before an outage, so that what follows starts from a settled state.
 */
async function bothDirect(
  st: TestContext,
  tr: TrellisNode,
  tsd: Tailscaled,
  A: Side,
  B: Side,
  pubA: string,
  ms: number,
) {
  const t0 = Date.now();
  const [msTr, msTs] = await Promise.all([
    msUntil(ms, async () => (await trellisPath(tr, B.ip))?.via === 'direct'),
    msUntil(ms, async () => (await tsPeer(tsd, A.ip))?.CurAddr.startsWith(`${pubA}:`) === true),
  ]);
  const when = (x: number | null) => (x === null ? `not within ${secs(ms)}` : `after ${secs(x)}`);
  st.diagnostic(`direct: trellis ${when(msTr)}, tailscaled ${when(msTs)}; polls ${secs(Date.now() - t0)}`);
  st.diagnostic(`trellis a → b path: ${show(await trellisPath(tr, B.ip))}`);
  const bad = [msTr === null ? 'Trellis' : '', msTs === null ? 'tailscaled' : ''].filter(Boolean);
  assert.deepEqual(bad, [], `no direct path between two easy NATs: ${bad.join(', ')}`);
}

/** NAT lab with site a (Trellis) and site b (tailscaled, easy NAT); both logged in; ready-made sides. */
async function setup(lab: Lab, natA: NatKind) {
  const nl = await buildNatLab(lab, [
    { name: 'a', nat: natA },
    { name: 'b', nat: 'easy' },
  ]);
  const { headscale: hs, authKey } = nl.tailnet;
  const [tr, tsd] = await Promise.all([
    startTrellisNode(nl.site('a').host, { hostname: 'trellis-a', loginServer: hs.url, authKey, upTimeoutS: 30 }),
    (async (): Promise<Tailscaled> => {
      const d = await startTailscaled(nl.site('b').host, { name: 'b', env: TS_ENV });
      // through a loopback relay to Headscale, so that tailscaled redials it after a restart
      const loginServer = await nl.site('b').loopbackControl(hs.url);
      await d.up({ loginServer, authKey, hostname: 'ts-b', timeoutS: 30 });
      return d;
    })(),
  ]);
  const [ipA, ipB] = [(await tr.ip()).v4, (await tsd.ip()).v4];
  const A: Side = { label: 'trellis a', host: nl.site('a').host, ip: ipA };
  const B: Side = { label: 'tailscaled b', host: nl.site('b').host, ip: ipB };
  const dump = async (): Promise<string> =>
    [
      `--- trellis a status:\n${JSON.stringify(await tr.status().catch((e: Error) => e.message))}`,
      `--- trellis a daemon output (tail):\n${tr.output().slice(-10_000)}`,
      `--- tailscaled b output (tail):\n${tsd.output().slice(-6_000)}`,
      `--- headscale output (tail):\n${hs.output().slice(-4_000)}`,
      ...(await Promise.all(Object.values(nl.sites).map((s) => s.natState().catch((e: Error) => e.message)))),
    ].join('\n');
  return { nl, hs, tr, tsd, A, B, dump };
}

test('recovery a: Trellis site WAN link down 5 s and up (easy ↔ easy NAT, direct)', { timeout: 75_000 }, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const { nl, tr, tsd, A, B, dump } = await setup(lab, 'easy');
    const site = nl.site('a');
    const { claim, report } = claims(t, dump);

    await claim('1. before: ICMP both ways (≤ 20 s), then a direct path on both sides (≤ 15 s)', async (st) => {
      await recovered(st, A, B, Date.now(), 20, 'the first ping');
      await bothDirect(st, tr, tsd, A, B, site.publicAddr, 15_000);
    });
    await site.setWan(false);
    const down = Date.now();
    t.diagnostic(`${site.router.name}: ${site.wanIf} down`);
    await claim('2. while the link is down nothing gets through', (st) => noEcho(st, A, B, 2));
    await delay(Math.max(0, 5_000 - (Date.now() - down)));
    await site.setWan(true); // returns once the link has carrier again
    const back = Date.now();
    t.diagnostic(`${site.wanIf} up again after ${secs(back - down)} down`);
    await claim(`3. ICMP both ways within ${RECOVERY_S} s of the link coming back`, (st) =>
      recovered(st, A, B, back, RECOVERY_S, 'link up'),
    );
    await claim('4. then 3 echo replies each way (≤ 5 s)', (st) => steady(st, A, B, 5));
    await claim('5. (diagnostic) paths after the recovery', async (st) => {
      const ms = await msUntil(10_000, async () => (await trellisPath(tr, B.ip))?.via === 'direct');
      const peer = await tsPeer(tsd, A.ip);
      st.diagnostic(
        `trellis direct again: ${ms === null ? 'not within 10 s' : `${secs(Date.now() - back)} after back`}`,
      );
      st.diagnostic(`trellis a → b path: ${show(await trellisPath(tr, B.ip))}`);
      st.diagnostic(`tailscaled b → a: CurAddr=${peer?.CurAddr || "''"} Relay=${peer?.Relay || "''"}`);
    });
    await report();
  });
});

test('recovery b: Headscale SIGKILLed and restarted: traffic, then map updates', { timeout: 75_000 }, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const { nl, hs, tr, tsd, A, B, dump } = await setup(lab, 'easy');
    const { claim, report } = claims(t, dump);

    await claim('1. before: ICMP both ways (≤ 20 s), then a direct path on both sides (≤ 15 s)', async (st) => {
      await recovered(st, A, B, Date.now(), 20, 'the first ping');
      await bothDirect(st, tr, tsd, A, B, nl.site('a').publicAddr, 15_000);
    });
    await hs.kill();
    const down = Date.now();
    // Direct paths need neither control nor DERP (both gone with the process): reported, not required.
    const during = await firstEcho(A, B, down, 2);
    t.diagnostic(`while Headscale is down: ${during.map((r) => `${r.what} ${r.ms === null ? 'no echo' : 'ok'}`)}`);
    await delay(Math.max(0, 3_000 - (Date.now() - down)));
    const restarting = Date.now();
    await hs.restart(); // returns once /key serves this server's key
    const back = Date.now();
    t.diagnostic(`Headscale back after ${secs(back - down)} down (restart() took ${secs(back - restarting)})`);
    await claim(`2. ICMP both ways within ${RECOVERY_S} s of Headscale being back`, (st) =>
      recovered(st, A, B, back, RECOVERY_S, 'Headscale was back'),
    );
    await claim(`3. a rename in Headscale reaches Trellis (≤ ${RECOVERY_S} s): the map stream is back`, (st) =>
      renameReaches(st, hs, tr, B.ip, 'ts-renamed', back, RECOVERY_S * 1000),
    );
    await claim('4. with the fresh netmap applied: 3 echo replies each way (≤ 5 s)', (st) => steady(st, A, B, 5));
    t.diagnostic(`tailscaled after the restart: ${await tsControlView(tsd, A.ip, 'ts-renamed')}`);
    await report();
  });
});

test('recovery c: DERP (Headscale) restarted under a UDP-blocked Trellis: traffic via DERP', {
  timeout: 75_000,
}, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const { hs, tr, tsd, A, B, dump } = await setup(lab, 'udp-blocked');
    const { claim, report } = claims(t, dump);

    await claim('1. before: ICMP both ways via DERP (≤ 20 s)', async (st) => {
      await recovered(st, A, B, Date.now(), 20, 'the first ping');
      const mine = await trellisPath(tr, B.ip);
      st.diagnostic(`trellis a → b path: ${show(mine)}`);
      assert.equal(mine?.via, 'derp', `Trellis path with UDP blocked: ${show(mine)}`);
      // Settled means tailscaled has Trellis's home DERP from control (Relay). Without it, tailscaled answers only
      // over the DERP connection Trellis last wrote on, and forgets that route across a DERP reconnect (magicsock
      // runDerpReader clears it on the read error but keeps lastPacketSrc, so the same sender never re-adds it).
      const ms = await msUntil(10_000, async () => (await tsPeer(tsd, A.ip))?.Relay === 'headscale');
      const peer = await tsPeer(tsd, A.ip);
      st.diagnostic(`tailscaled b → a: Relay=${peer?.Relay || "''"} ${ms === null ? '' : `after ${secs(ms)}`}`);
      assert.notEqual(ms, null, 'tailscaled never learnt Trellis’s home DERP from control (NetInfo.PreferredDERP)');
    });
    await hs.process.stop(); // SIGTERM: Headscale and its embedded DERP go away
    const down = Date.now();
    await claim('2. while DERP is down nothing gets through', (st) => noEcho(st, A, B, 2));
    await delay(Math.max(0, 3_000 - (Date.now() - down)));
    const restarting = Date.now();
    await hs.restart(); // returns once /key serves this server's key; DERP is on the same listener
    const back = Date.now();
    t.diagnostic(`Headscale (DERP) back after ${secs(back - down)} down (restart() took ${secs(back - restarting)})`);
    await claim(`3. ICMP both ways within ${RECOVERY_S} s of DERP being back`, (st) =>
      recovered(st, A, B, back, RECOVERY_S, 'DERP was back'),
    );
    await claim(`4. a rename in Headscale reaches Trellis (≤ ${RECOVERY_S} s): the map stream is back`, (st) =>
      renameReaches(st, hs, tr, B.ip, 'ts-renamed', back, RECOVERY_S * 1000),
    );
    await claim('5. with the fresh netmap applied: 3 echo replies each way (≤ 5 s)', (st) => steady(st, A, B, 5));
    await claim('6. (diagnostic) paths after the recovery', async (st) => {
      const peer = await tsPeer(tsd, A.ip);
      st.diagnostic(`trellis a → b path: ${show(await trellisPath(tr, B.ip))}`);
      st.diagnostic(`tailscaled b → a: CurAddr=${peer?.CurAddr || "''"} Relay=${peer?.Relay || "''"}`);
      st.diagnostic(`tailscaled after the restart: ${await tsControlView(tsd, A.ip, 'ts-renamed')}`);
    });
    await report();
  });
});
