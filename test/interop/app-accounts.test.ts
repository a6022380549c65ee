// The window's accounts end to end: `trellis web` on a real `trellis daemon` (TUN in its namespace) logged in to one
// Headscale; in Debian's chromium the user adds an account on a second Headscale through the switcher (Running
// there), then switches back (Running on the first with the same node and address) — the daemon's own status and
// both servers' node lists are the judges. Screenshots go to test-artifacts/app-web/.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StatusSnapshot } from '../../main/engine/protocol.ts';
import { buildRenderer, openWindowOn } from './lab/app-page.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready } from './lab/scenario.ts';
import { buildTailnetLab, startSecondHeadscale, startTrellisNode } from './lab/tailnet.ts';
import { requireTools } from './lab/tools.ts';

test('desktop UI in chromium: add an account on a second Headscale, switch between the two', {
  timeout: 300_000,
}, async (t) => {
  if (!ready(t) || !requireTools(t, ['chromium'])) return;
  await buildRenderer();
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a']);
    const ha = tn.hosts.a;
    if (!ha) throw new Error('tailnet lab without host a');
    const hs1 = tn.headscale;
    const { headscale: hs2, authKey: key2 } = await startSecondHeadscale(tn);
    const node = await startTrellisNode(ha, { hostname: 'trellis-a', loginServer: hs1.url, authKey: tn.authKey });
    const first = await node.waitFor((s) => s.state === 'Running' && s.self !== undefined, 20_000);
    const { web, page, app } = await openWindowOn(t, node.socket);
    const { claim, report } = claims(
      t,
      async () => `${lab.diagnostics()}\n--- trellis web:\n${web.process.output()}\n--- daemon:\n${node.output()}`,
    );
    const current = () => page.getByTestId('account-current');
    const currentServer = () => page.getByTestId('account-current-server');
    let second: StatusSnapshot | undefined;

    await claim('1. the account in use is at the top, with its server', async () => {
      await page.goto(web.url);
      await app.waitForState('Running', 30_000);
      await current().waitFor({ timeout: 10_000 });
      assert.equal((await currentServer().textContent())?.trim(), '203.0.113.1:8080');
      assert.equal((await current().textContent())?.trim(), first.profile?.loginName);
    });

    await claim('2. adding an account on the second server through the switcher: Running there', async (st) => {
      await page.getByTestId('account-switcher').click();
      await page.getByTestId('account-add').click();
      await page.getByTestId('account-add-url').fill(hs2.url);
      await page.getByTestId('account-add-key').fill(key2);
      await app.screenshot('accounts-1-add');
      await page.getByTestId('account-add-submit').click();
      await page.getByTestId('account-add-form').waitFor({ state: 'detached', timeout: 90_000 });
      await page.locator('[data-testid="account-current-server"]', { hasText: '203.0.113.1:8081' }).waitFor({
        timeout: 30_000,
      });
      await app.waitForState('Running', 60_000);
      second = await node.waitFor((s) => s.state === 'Running' && s.self !== undefined, 20_000);
      st.diagnostic(`second account ${second.profile?.id}: ${second.self?.addresses.join(' ')}`);
      assert.equal(second.prefs.controlURL, hs2.url);
      assert.notEqual(second.profile?.id, first.profile?.id);
      assert.ok((await hs2.nodes()).some((n) => n.ipAddresses.includes(second?.self?.addresses[0] ?? '?')));
      assert.equal(await page.getByTestId('account-item').count(), 2, 'both accounts listed');
      await app.screenshot('accounts-2-added');
    });

    await claim('3. switching back in the window: Running on the first, same node, no new registration', async () => {
      const before = { one: (await hs1.nodes()).length, two: (await hs2.nodes()).length };
      const firstItem = page.locator(`[data-testid="account-item"][data-id="${first.profile?.id}"]`);
      await firstItem.getByTestId('account-switch').click();
      await page.locator('[data-testid="account-current-server"]', { hasText: '203.0.113.1:8080' }).waitFor({
        timeout: 30_000,
      });
      await app.waitForState('Running', 60_000);
      const back = await node.waitFor((s) => s.state === 'Running' && s.self !== undefined, 20_000);
      assert.equal(back.profile?.id, first.profile?.id);
      assert.equal(back.self?.id, first.self?.id);
      assert.deepEqual(back.self?.addresses, first.self?.addresses);
      assert.deepEqual({ one: (await hs1.nodes()).length, two: (await hs2.nodes()).length }, before);
      await page.locator(`[data-testid="account-item"][data-id="${second?.profile?.id}"]`).waitFor();
      await app.screenshot('accounts-3-switched-back');
    });
    await report();
  });
});
