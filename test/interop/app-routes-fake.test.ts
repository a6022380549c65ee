// The window's exit node picker and routes settings, in Debian's chromium with the renderer's fake API (no engine:
// the page itself is tested; the real engine's side is app-routes.test.ts). The picker lists the last used exit
// node first and one suggested by measured latency, marks offline ones, searches; choosing an offline one flags
// held traffic. Peers offering an exit node or subnets carry badges and are found by "exit" and by an address in
// a route. Settings show each offered route's approval and refuse a wrong CIDR next to the field. With 2,000
// devices the picker renders 100 exit nodes and points to the search. Every such view, light and dark, passes an
// axe-core scan with no serious or critical violation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { describeViolations, openFake, seriousViolations, serveDist } from './lab/app-audit.ts';
import { AppPage, buildRenderer, launchChromium } from './lab/app-page.ts';
import { requireTools } from './lab/tools.ts';

// In the fake tailnet every fifth device offers an exit node: atlas (2 ms, direct), fjord (45 ms, relay), kestrel
// (12 ms, direct), node-15 (offline), node-20 (60 ms, relay). Every seventh from the fourth offers two subnets:
// delta 10.3.0.0/16 and 192.168.3.0/24, kestrel 10.10.0.0/16 and 192.168.10.0/24, node-17 ….
const PEERS = '24';

async function optionOrder(page: Page): Promise<string[]> {
  await page.getByTestId('exit-node-picker').waitFor({ timeout: 5000 });
  return page
    .locator('[data-testid="exit-option"], [data-testid="exit-none"]')
    .evaluateAll((els) => els.map((e) => (e as unknown as { dataset: { peer?: string } }).dataset.peer ?? 'None'));
}

async function count(page: Page): Promise<string> {
  return ((await page.getByTestId('peer-count').textContent()) ?? '').trim();
}

test('exit nodes and routes in the window (fake API, chromium)', { timeout: 240_000 }, async (t) => {
  if (!requireTools(t, ['chromium'])) return;
  await buildRenderer();
  const browser = await launchChromium();
  t.after(() => browser.close());

  await t.test('the picker: None, the suggested one by latency, offline marked; choosing marks it in use', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    await serveDist(page);
    await openFake(page, { peers: PEERS });
    const app = new AppPage(page);
    await app.waitForExitNode('none');
    await page.getByTestId('exit-node-choose').click();
    const first = await optionOrder(page);
    assert.deepEqual(first, ['None', 'atlas', 'fjord', 'kestrel', 'node-20', 'node-15']);
    const atlas = page.locator('[data-testid="exit-option"][data-peer="atlas"]');
    assert.match((await atlas.textContent()) ?? '', /suggested: lowest latency, 2 ms/);
    const offline = page.locator('[data-testid="exit-option"][data-peer="node-15"]');
    assert.match((await offline.textContent()) ?? '', /offline/);
    assert.equal(await page.getByTestId('exit-none').getAttribute('aria-pressed'), 'true');
    assert.equal(await atlas.getAttribute('aria-pressed'), 'false');
    // Keyboard: the search box has focus on opening; Escape closes and focus returns to the button.
    await page.waitForFunction('document.activeElement?.dataset.testid === "exit-search"', null, { timeout: 5000 });
    await page.keyboard.press('Escape');
    await page.getByTestId('exit-node-picker').waitFor({ state: 'detached', timeout: 5000 });
    await page.waitForFunction('document.activeElement?.dataset.testid === "exit-node-choose"', null, {
      timeout: 5000,
    });
    await page.keyboard.press('Enter');
    await page.getByTestId('exit-search').fill('fjo');
    assert.deepEqual(await optionOrder(page), ['fjord']);
    await page.getByTestId('exit-search').fill('');

    await app.chooseExitNode('kestrel');
    await app.waitForExitNode('active', 'kestrel');
    await app.peerRow('kestrel').getByTestId('peer-badge-exit-in-use').waitFor({ timeout: 5000 });
    assert.equal((await page.getByTestId('header-exit-node').textContent())?.trim(), '· through exit node kestrel');
    assert.equal(await app.peerRow('atlas').getByTestId('peer-badge-exit-in-use').count(), 0);

    // Another choice: the one used before is now listed first, the suggestion second.
    await app.chooseExitNode('atlas');
    await app.waitForExitNode('active', 'atlas');
    await page.getByTestId('exit-node-choose').click();
    assert.deepEqual((await optionOrder(page)).slice(0, 3), ['None', 'kestrel', 'atlas']);
    assert.match(
      (await page.locator('[data-testid="exit-option"][data-peer="kestrel"]').textContent()) ?? '',
      /last used/,
    );

    // An offline exit node stays chosen and the window says internet traffic is held.
    await app.chooseExitNode('node-15');
    await app.waitForExitNode('held', 'node-15');
    await page.getByTestId('exit-node-held').waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('header-exit-node').count(), 0, 'held traffic goes through no exit node');
    assert.match((await page.getByTestId('exit-node-held').textContent()) ?? '', /node-15 is offline.*held/);
    await app.screenshot('fake-exit-node-held');
    await page.getByTestId('exit-lan').check();
    assert.ok(await page.getByTestId('exit-lan').isChecked());

    await app.chooseExitNode('None');
    await app.waitForExitNode('none');
    assert.equal(await page.getByTestId('exit-node-held').count(), 0);
    await page.close();
  });

  await t.test('badges, and the search finds offers by "exit", by CIDR and by an address inside a route', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    await serveDist(page);
    await openFake(page, { peers: PEERS });
    const app = new AppPage(page);
    await app.peerRows().first().waitFor({ timeout: 20_000 });
    await app.peerRow('fjord').getByTestId('peer-badge-exit').waitFor({ timeout: 5000 });
    assert.equal((await app.peerRow('kestrel').getByTestId('peer-badge-routes').textContent())?.trim(), '2 subnets');
    assert.equal(await app.peerRow('birch').locator('.badge-offer').count(), 0);

    await app.search('exit');
    await page.waitForFunction('document.querySelector("[data-testid=peer-count]")?.textContent === "5 of 24"', null, {
      timeout: 5000,
    });
    await app.search('10.3.0.0/16');
    assert.equal(await count(page), '1 of 24');
    assert.equal(await app.peerRows().first().getAttribute('data-peer'), 'delta');
    await app.search('192.168.10.77');
    assert.equal(await count(page), '1 of 24');
    assert.equal(await app.peerRows().first().getAttribute('data-peer'), 'kestrel');
    await app.search('192.168.99.1');
    assert.equal(await count(page), '0 of 24');

    await app.search('');
    await page.locator('[data-testid="peer-row"][data-peer="kestrel"] .peer-main').click();
    const details = page.getByTestId('peer-details');
    await details.waitFor({ timeout: 5000 });
    assert.match((await details.textContent()) ?? '', /Subnet routes10\.10\.0\.0\/16192\.168\.10\.0\/24/);
    assert.match((await details.textContent()) ?? '', /Offers to be an exit node/);
    await page.getByTestId('details-exit-node').click();
    await new AppPage(page).waitForExitNode('active', 'kestrel');
    assert.match((await details.textContent()) ?? '', /In use: your internet traffic goes through it/);
    assert.equal((await page.getByTestId('details-exit-node').textContent())?.trim(), 'Stop using as exit node');
    await page.getByTestId('details-exit-node').click();
    await new AppPage(page).waitForExitNode('none');
    await page.close();
  });

  await t.test('settings: offered routes with their approval; a wrong CIDR is refused next to the field', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await serveDist(page);
    // The snapshot after each change comes 1.5 s after the call's reply (the controller's push comes 100 ms after).
    await openFake(page, { peers: PEERS, routes: '1', lag: '1500' });
    await page.getByTestId('nav-settings').click();
    const card = page.getByTestId('routes-card');
    await card.waitFor({ timeout: 5000 });
    const approval = (route: string) =>
      page.locator(`[data-testid="advertised-route"][data-route="${route}"] [data-testid="route-approval"]`);
    assert.equal(await approval('192.168.40.0/24').getAttribute('data-approved'), 'true');
    assert.equal(await approval('10.40.0.0/16').getAttribute('data-approved'), 'false');

    const input = page.getByTestId('route-input');
    for (const [typed, said] of [
      ['10.0.0.1/24', /10\.0\.0\.1\/24 has bits set past its prefix; the route is 10\.0\.0\.0\/24\./],
      ['10.0.0.0', /needs a prefix length/],
      ['nas.local', /is not a route/],
      ['0.0.0.0/0', /Run as exit node/],
    ] as const) {
      await input.fill(typed);
      await page.getByTestId('route-add').click();
      const error = page.getByTestId('route-error');
      await error.waitFor({ timeout: 5000 });
      assert.match((await error.textContent()) ?? '', said);
      assert.equal(await input.getAttribute('aria-invalid'), 'true');
    }
    await new AppPage(page).screenshot('fake-routes-error');
    await input.fill('FD00:0:0::/64');
    await page.getByTestId('route-add').click();
    await approval('fd00::/64').waitFor({ timeout: 5000 });
    assert.equal(await approval('fd00::/64').getAttribute('data-approved'), 'false');
    assert.equal(await page.getByTestId('route-error').count(), 0);
    assert.equal(await input.inputValue(), '');

    // Two removals in quick succession: the second click comes before main pushes the snapshot with the first
    // change, so a card computing its list from the snapshot it shows would send 10.40.0.0/16 back.
    await page.getByRole('button', { name: 'Remove 10.40.0.0/16' }).click();
    await page.getByRole('button', { name: 'Remove fd00::/64' }).click();
    const offered = () =>
      page
        .getByTestId('advertised-route')
        .evaluateAll((els) => els.map((e) => (e as unknown as { dataset: { route?: string } }).dataset.route));
    for (const gone of ['10.40.0.0/16', 'fd00::/64']) {
      await page
        .locator(`[data-testid="advertised-route"][data-route="${gone}"]`)
        .waitFor({ state: 'detached', timeout: 10_000 })
        .catch(() => {}); // the list is asserted whole below
    }
    assert.deepEqual(await offered(), ['192.168.40.0/24'], 'both removed, none back');

    await page.getByTestId('advertise-exit-node').check();
    await card.locator('.route-state [data-approved="true"]').waitFor({ timeout: 5000 });
    await page.getByTestId('route-all').check();
    assert.ok(await page.getByTestId('route-all').isChecked());
    await page.close();
  });

  await t.test('2,000 devices, 400 exit nodes: the picker renders 100 and says how to find the rest', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    await serveDist(page);
    await openFake(page, { peers: '2000' });
    await page.getByTestId('exit-node-choose').click();
    await page.getByTestId('exit-node-picker').waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId('exit-option').count(), 100);
    assert.match(
      (await page.getByTestId('exit-node-picker').textContent()) ?? '',
      /300 more: search to narrow the list\./,
    );
    await page.getByTestId('exit-search').fill('node-1995');
    assert.deepEqual(await optionOrder(page), ['node-1995']);
    await page.close();
  });

  const views: { name: string; params: Record<string, string>; reach?(page: Page): Promise<void> }[] = [
    { name: 'exit-node-in-use', params: { peers: PEERS, exit: 'kestrel' } },
    { name: 'exit-node-held', params: { peers: PEERS, exit: 'node-15' } },
    {
      name: 'exit-node-picker',
      params: { peers: PEERS, exit: 'fjord' },
      reach: (page) => page.getByTestId('exit-node-choose').click(),
    },
    {
      name: 'routes-settings',
      params: { peers: PEERS, routes: '1' },
      reach: async (page) => {
        await page.getByTestId('nav-settings').click();
        await page.getByTestId('route-input').fill('10.1.2.3/8');
        await page.getByTestId('route-add').click();
        await page.getByTestId('route-error').waitFor({ timeout: 5000 });
      },
    },
  ];
  for (const scheme of ['light', 'dark'] as const) {
    await t.test(`exit node and routes views in ${scheme}: no serious or critical axe violation`, async () => {
      const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
      await serveDist(page);
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
      const app = new AppPage(page);
      const failures: string[] = [];
      for (const view of views) {
        await openFake(page, view.params);
        await page.locator('.header').first().waitFor({ timeout: 20_000 });
        await view.reach?.(page);
        await page.waitForTimeout(300);
        await app.screenshot(`fake-${view.name}-${scheme}`);
        const found = await seriousViolations(page);
        if (found.length > 0) failures.push(`${view.name} (${scheme}):\n${describeViolations(found)}`);
      }
      assert.equal(failures.length, 0, failures.join('\n\n'));
      await page.close();
    });
  }
});
