// The Settings card "Services on this computer" (port forwards, issue 15 item 3) in Debian's chromium with the
// renderer's fake API (no engine: the page itself is tested; app-userspace.test.ts drives a real one). In userspace
// mode the card lists each forward, adds one from two fields checked with the engine's own parser (a bad entry is
// refused with one sentence next to the field at fault, and nothing is sent), and removes two in quick succession
// without bringing the first back: the fake answers setPrefs long before it pushes the snapshot, so a card that
// computed a change from the snapshot it shows would fail. With a network device the card says it is not needed.
// Both views, light and dark, pass an axe-core scan with no serious or critical violation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { describeViolations, openFake, seriousViolations, serveDist } from './lab/app-audit.ts';
import { AppPage, buildRenderer, launchChromium } from './lab/app-page.ts';
import { requireTools } from './lab/tools.ts';

/** The forwards shown, as "TAILNET→LOCAL". */
function shownForwards(page: Page): Promise<string[]> {
  return page.getByTestId('forward-row').evaluateAll((els) =>
    els.map((e) => {
      const d = (e as unknown as { dataset: { tailnetPort?: string; localPort?: string } }).dataset;
      return `${d.tailnetPort}→${d.localPort}`;
    }),
  );
}

async function openSettings(page: Page, params: Record<string, string>): Promise<void> {
  await openFake(page, { peers: '8', ...params });
  await page.getByTestId('nav-settings').click();
  await page.getByTestId('forwards-card').waitFor({ timeout: 20_000 });
}

async function typeForward(page: Page, tailnet: string, local: string): Promise<void> {
  await page.getByTestId('forward-tailnet-port').fill(tailnet);
  await page.getByTestId('forward-local-port').fill(local);
  await page.getByTestId('forward-add').click();
}

test('port forwards in Settings (fake API, chromium)', { timeout: 240_000 }, async (t) => {
  if (!requireTools(t, ['chromium'])) return;
  await buildRenderer();
  const browser = await launchChromium();
  t.after(() => browser.close());

  await t.test('userspace: list, add, a bad entry refused next to its field, two removed quickly', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await serveDist(page);
    // The snapshot after each change comes 1.5 s after the call's reply (the controller pushes 100 ms after).
    await openSettings(page, { userspace: '1', forwards: '1', lag: '1500' });
    const card = page.getByTestId('forwards-card');
    assert.equal(await card.getAttribute('data-mode'), 'userspace');
    assert.match(
      (await page.getByTestId('forwards-meaning').textContent()) ?? '',
      /Devices the tailnet's policy allows can connect .* this computer's loopback \(127\.0\.0\.1\)/,
    );
    assert.deepEqual(await shownForwards(page), ['8080→8080', '2222→22']);
    const row = (port: number) => page.locator(`[data-testid="forward-row"][data-tailnet-port="${port}"]`);
    assert.equal((await row(2222).textContent())?.replace(/Remove$/, ''), "Port 2222 → this computer's 22");

    await typeForward(page, '9000', '');
    await row(9000).waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('forward-tailnet-port').inputValue(), '', 'the fields are emptied');
    await typeForward(page, '443', '8443');
    await row(443).waitFor({ timeout: 5000 });
    assert.deepEqual(await shownForwards(page), ['8080→8080', '2222→22', '9000→9000', '443→8443']);

    const tailnetField = page.getByTestId('forward-tailnet-port');
    const localField = page.getByTestId('forward-local-port');
    for (const [tailnet, local, said, fault] of [
      ['http', '', /^The tailnet port must be a number from 1 to 65535, not "http"\.$/, tailnetField],
      ['', '22', /^Give the tailnet port that peers connect to\.$/, tailnetField],
      ['5000', '99999', /^The local port must be a number from 1 to 65535, not "99999"\.$/, localField],
      ['8080', '3000', /^Tailnet port 8080 is forwarded already \(to this computer's 8080\)\.$/, tailnetField],
    ] as const) {
      await typeForward(page, tailnet, local);
      const error = page.getByTestId('forward-error');
      await error.waitFor({ timeout: 5000 });
      assert.match((await error.textContent()) ?? '', said);
      assert.equal(await fault.getAttribute('aria-invalid'), 'true', `${tailnet}→${local}: the field at fault`);
      const other = fault === tailnetField ? localField : tailnetField;
      assert.equal(await other.getAttribute('aria-invalid'), 'false');
      assert.equal(await fault.getAttribute('aria-describedby'), await error.getAttribute('id'));
    }
    await new AppPage(page).screenshot('fake-forwards-error');
    assert.deepEqual(await shownForwards(page), ['8080→8080', '2222→22', '9000→9000', '443→8443'], 'nothing sent');
    await tailnetField.fill('8081');
    assert.equal(await page.getByTestId('forward-error').count(), 0, 'typing clears the sentence');

    // Two removals in quick succession, the second before main pushes the snapshot with the first.
    await page.getByRole('button', { name: 'Remove port 8080' }).click();
    await page.getByRole('button', { name: 'Remove port 2222' }).click();
    for (const port of [8080, 2222]) {
      await row(port)
        .waitFor({ state: 'detached', timeout: 10_000 })
        .catch(() => {}); // the list is asserted whole below
    }
    assert.deepEqual(await shownForwards(page), ['9000→9000', '443→8443'], 'both removed, none back');
    // And once the (late) snapshot has come: still both gone.
    await page.waitForTimeout(2000);
    assert.deepEqual(await shownForwards(page), ['9000→9000', '443→8443'], 'the late snapshot agrees');
    await page.close();
  });

  await t.test(
    'with a network device the card says forwards are not needed, and keeps saved ones removable',
    async () => {
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      await serveDist(page);
      await openSettings(page, { forwards: '1' });
      assert.equal(await page.getByTestId('forwards-card').getAttribute('data-mode'), 'tun');
      assert.match(
        (await page.getByTestId('forwards-not-needed').textContent()) ?? '',
        /Not needed now: .* reach the services on this computer directly.* used only when Trellis runs in userspace mode/,
      );
      assert.equal(await page.getByTestId('forward-add').count(), 0, 'nothing to add');
      assert.deepEqual(await shownForwards(page), ['8080→8080', '2222→22']);
      await page.getByRole('button', { name: 'Remove port 8080' }).click();
      await page.locator('[data-testid="forward-row"][data-tailnet-port="8080"]').waitFor({ state: 'detached' });
      assert.deepEqual(await shownForwards(page), ['2222→22']);
      await page.close();
    },
  );

  const views: { name: string; params: Record<string, string>; reach?(page: Page): Promise<void> }[] = [
    {
      name: 'forwards-userspace',
      params: { userspace: '1', forwards: '1' },
      reach: async (page) => {
        await typeForward(page, '70000', '');
        await page.getByTestId('forward-error').waitFor({ timeout: 5000 });
      },
    },
    { name: 'forwards-tun', params: { forwards: '1' } },
  ];
  for (const scheme of ['light', 'dark'] as const) {
    await t.test(`the forwards card in ${scheme}: no serious or critical axe violation`, async () => {
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      await serveDist(page);
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
      const app = new AppPage(page);
      const failures: string[] = [];
      for (const view of views) {
        await openSettings(page, view.params);
        await view.reach?.(page);
        await page.getByTestId('forwards-card').scrollIntoViewIfNeeded();
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
