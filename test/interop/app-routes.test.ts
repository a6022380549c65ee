// The window's exit node picker end to end: `trellis web` on a real `trellis daemon` (TUN in its namespace) in a
// Headscale tailnet with an official tailscaled advertising an exit node, its default routes approved with
// `headscale nodes approve-routes`. In Debian's chromium the user finds the exit node by its badge and by "exit",
// picks it in the picker and the peer shows it in use — the daemon's own status is the judge — while the tailnet
// keeps working; choosing None clears it and the picker offers it first as the last used; Settings' Use subnet
// routes and an offered subnet reach the daemon's prefs (a wrong CIDR does not). trellis web and the
// daemon run with temporary homes. Screenshots go to test-artifacts/app-web/.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildRenderer, openWindowOn } from './lab/app-page.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

test('desktop UI in chromium: pick a tailscaled exit node in the picker, the peer shows it in use', {
  timeout: 300_000,
}, async (t) => {
  if (!ready(t) || !requireTools(t, ['chromium'])) return;
  await buildRenderer();
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'x']);
    const [ha, hx] = [tn.hosts.a, tn.hosts.x];
    if (!ha || !hx) throw new Error('tailnet lab without hosts a, x');
    const hs = tn.headscale;

    // The exit node: tailscaled offering 0.0.0.0/0 and ::/0, approved by the admin.
    const tsX = await startTailscaled(hx, { name: 'x', env: TS_ENV });
    await tsX.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-x' });
    const set = await tsX.cli(['set', '--advertise-exit-node=true']);
    assert.equal(set.code, 0, `tailscale set --advertise-exit-node: ${set.stderr}`);
    const ipX = (await tsX.status()).Self?.TailscaleIPs.find((a) => !a.includes(':')) ?? '';
    assert.ok(ipX, 'tailscaled has a tailnet IPv4');
    const hsX = (await hs.nodes()).find((n) => n.ipAddresses.includes(ipX));
    assert.ok(hsX, 'Headscale lists the exit node');
    await hs.cli(['nodes', 'approve-routes', '--identifier', String(hsX.id), '--routes', '0.0.0.0/0,::/0']);

    const node = await startTrellisNode(ha, { hostname: 'trellis-a', loginServer: hs.url, authKey: tn.authKey });
    const offered = await node.waitFor(
      (s) => s.state === 'Running' && s.peers.some((p) => p.addresses.includes(ipX) && p.exitNodeOption),
      60_000,
    );
    const exitPeer = offered.peers.find((p) => p.addresses.includes(ipX));
    assert.equal(
      exitPeer?.exitNodeOption,
      true,
      `the engine sees ts-x offering an exit node: ${JSON.stringify(exitPeer)}`,
    );
    const name = exitPeer?.name ?? 'ts-x';
    // The exit node must know us too before it can answer (control tells it of a new node a moment later).
    const ipA = offered.self?.addresses.find((a) => !a.includes(':')) ?? '';
    await waitUntil('ts-x listing trellis-a', 30_000, async () =>
      (await tsX.status()).peers.some((p) => p.TailscaleIPs.includes(ipA)) ? true : null,
    );
    const { web, page, app } = await openWindowOn(t, node.socket);
    const { claim, report } = claims(
      t,
      async () => `${lab.diagnostics()}
--- trellis web:\n${web.process.output()}\n--- daemon:\n${node.output().slice(-4000)}\n--- tailscaled x:\n${tsX.output().slice(-3000)}`,
    );

    await claim('1. the exit node carries its badge and "exit" finds it', async () => {
      await page.goto(web.url);
      await app.waitForState('Running', 30_000);
      await app.peerRow(name).getByTestId('peer-badge-exit').waitFor({ timeout: 30_000 });
      await app.waitForExitNode('none');
      await app.search('exit');
      await page.waitForFunction('document.querySelector("[data-testid=peer-count]")?.textContent === "1 of 1"', null, {
        timeout: 10_000,
      });
      await app.search('');
    });

    await claim('2. picked in the picker: the peer shows it in use, and the daemon routes through it', async (st) => {
      await page.getByTestId('exit-node-choose').click();
      await page.locator(`[data-testid="exit-option"][data-peer="${name}"]`).waitFor({ timeout: 10_000 });
      await app.screenshot('routes-1-picker');
      await app.chooseExitNode(name);
      await app.waitForExitNode('active', name, 30_000);
      await app.peerRow(name).getByTestId('peer-badge-exit-in-use').waitFor({ timeout: 30_000 });
      await app.screenshot('routes-2-in-use');
      assert.equal((await page.getByTestId('header-exit-node').textContent())?.trim(), `· through exit node ${name}`);
      const s = await node.waitFor((x) => x.exitNode?.active === true, 20_000);
      st.diagnostic(`exit node: ${JSON.stringify(s.exitNode)}`);
      assert.equal(s.prefs.exitNodeID, exitPeer?.stableID);
      assert.deepEqual(s.exitNode, { id: exitPeer?.stableID, name, online: true, active: true });
      assert.equal(s.peers.find((p) => p.stableID === exitPeer?.stableID)?.exitNode, true);
      // The tailnet keeps working with every route through the exit node: the exit node itself answers.
      if (!(await node.ping(ipX, { count: 3, deadlineS: 15 }))) {
        // Everything the excerpt of a failed run can carry: the path to the exit node, the routing, the daemon's log.
        const after = await node.status().catch((e: Error) => e.message);
        const peer = typeof after === 'string' ? after : after.peers.find((p) => p.addresses.includes(ipX));
        const rules = await ha.run(['ip', '-4', 'rule']);
        const table = await ha.run(['ip', '-4', 'route', 'show', 'table', 'all']);
        const seen = await tsX.status().then(
          (x) => JSON.stringify(x.peers.find((p) => p.TailscaleIPs.includes(ipA))),
          (e: Error) => e.message,
        );
        assert.fail(
          `ping ${ipX} through the tunnel: no replies in 15 s\npeer: ${JSON.stringify(peer)}\nts-x sees us: ${seen}\n` +
            `rules:\n${rules.stdout}routes:\n${table.stdout}daemon:\n${node.output().slice(-2500)}`,
        );
      }
    });

    await claim('3. None clears it; the picker then offers it first, as the last used', async () => {
      await app.chooseExitNode('None');
      await app.waitForExitNode('none', '', 30_000);
      await page.locator(`[data-testid="peer-row"][data-peer="${name}"] [data-testid="peer-badge-exit"]`).waitFor({
        timeout: 30_000,
      });
      const s = await node.waitFor((x) => x.prefs.exitNodeID === '', 20_000);
      assert.equal(s.exitNode, undefined);
      assert.equal(s.prefs.lastExitNodeID, exitPeer?.stableID);
      await page.getByTestId('exit-node-choose').click();
      const first = page.locator('[data-testid="exit-option"]').first();
      assert.equal(await first.getAttribute('data-peer'), name);
      assert.match((await first.textContent()) ?? '', /last used/);
    });
    await claim(
      '4. Settings: use subnet routes and offer a subnet reach the daemon; a wrong CIDR stays in the window',
      async () => {
        await page.keyboard.press('Escape');
        await page.getByTestId('nav-settings').click();
        await page.getByTestId('route-all').check();
        await node.waitFor((x) => x.prefs.routeAll === true, 10_000).then((x) => assert.equal(x.prefs.routeAll, true));
        const before = (await node.status()).prefs.advertiseRoutes;
        await page.getByTestId('route-input').fill('10.77.0.9/24');
        await page.getByTestId('route-add').click();
        await page.getByTestId('route-error').waitFor({ timeout: 5000 });
        assert.deepEqual((await node.status()).prefs.advertiseRoutes, before, 'nothing sent for a wrong CIDR');
        await page.getByTestId('route-input').fill('10.77.0.0/24');
        await page.getByTestId('route-add').click();
        await page.locator('[data-testid="advertised-route"][data-route="10.77.0.0/24"]').waitFor({ timeout: 10_000 });
        const s = await node.waitFor((x) => x.prefs.advertiseRoutes.includes('10.77.0.0/24'), 10_000);
        assert.deepEqual(s.prefs.advertiseRoutes, ['10.77.0.0/24']);
        await app.screenshot('routes-3-settings');
      },
    );
    await report();
  });
});
