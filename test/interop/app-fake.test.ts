// The window at scale and for every user, in Debian's chromium with the renderer's fake API (no engine: what is
// tested is the page itself). 2,000 devices: the list stays small in the DOM, sorts names as people read them
// (node-18 before node-178) and keeps the search box in view after scrolling to the end. Every view, light and
// dark, passes an axe-core scan with no serious or critical violation (contrast included); each is saved as a
// screenshot in test-artifacts/app-web/. Userspace networking: the notice with both proxy addresses, copy buttons,
// the reason and how to get full mode, above 2,000 devices; the proxy addresses checked in Settings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { describeViolations, openFake, seriousViolations, serveDist } from './lab/app-audit.ts';
import { AppPage, buildRenderer, launchChromium } from './lab/app-page.ts';
import { requireTools } from './lab/tools.ts';

const PEERS = '2000';

interface View {
  name: string;
  params: Record<string, string>;
  /** Brings the page to the view after loading. */
  reach?(page: Page): Promise<void>;
}

const VIEWS: View[] = [
  { name: 'login', params: { state: 'NeedsLogin', peers: '0' } },
  {
    name: 'login-error',
    params: { state: 'NeedsLogin', peers: '0' },
    reach: async (page) => {
      await page.getByTestId('control-custom').check();
      await page.getByTestId('control-url').fill('https://down.example.com');
      await page.getByTestId('login-submit').click();
      await page.locator('[data-testid="login-error"][data-field="controlURL"]').waitFor({ timeout: 5000 });
      await page.locator('.error-detail summary').click();
    },
  },
  {
    name: 'login-url',
    params: { state: 'NeedsLogin', peers: '0' },
    reach: async (page) => {
      await page.getByTestId('control-custom').check();
      await page.getByTestId('control-url').fill('https://hs.example.com');
      await page.getByTestId('login-submit').click();
      await page.getByTestId('auth-url').waitFor({ timeout: 5000 });
    },
  },
  { name: 'no-engine', params: { state: 'NoState', nolink: '1', peers: '0' } },
  { name: 'peers', params: { peers: PEERS, expiring: '1', health: '1' } },
  {
    name: 'peer-details',
    params: { peers: '40' },
    reach: async (page) => {
      await page.locator('[data-testid="peer-row"][data-peer="iris"] .peer-main').click();
      await page.getByTestId('peer-details').waitFor({ timeout: 5000 });
    },
  },
  {
    name: 'peers-disconnected',
    params: { peers: '40', state: 'Stopped' },
  },
  {
    name: 'files',
    params: { peers: '40', shell: 'web' },
    reach: async (page) => {
      await page.getByTestId('nav-files').click();
      await page.getByTestId('received-row').first().waitFor({ timeout: 5000 });
    },
  },
  {
    name: 'settings',
    params: { peers: '40', control: 'https://controlplane.tailscale.com' },
    reach: async (page) => {
      await page.getByTestId('nav-settings').click();
      await page.getByTestId('admin-console').waitFor({ timeout: 5000 });
    },
  },
  {
    name: 'settings-error',
    params: { peers: '40' },
    reach: async (page) => {
      await page.getByTestId('nav-settings').click();
      await page.getByPlaceholder("This computer's host name").fill('not a name!');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByTestId('settings-error').waitFor({ timeout: 5000 });
    },
  },
  { name: 'pending-send', params: { peers: '40', pending: '1' } },
  { name: 'peers-userspace', params: { peers: PEERS, userspace: '1' } },
  {
    name: 'settings-proxy-error',
    params: { peers: '40', userspace: '1' },
    reach: async (page) => {
      await page.getByTestId('nav-settings').click();
      await page.getByTestId('pref-socks5Listen').fill('0.0.0.0:1055');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByTestId('settings-error').waitFor({ timeout: 5000 });
    },
  },
];

test('the window with 2,000 devices, every view accessible in light and dark (fake API, chromium)', {
  timeout: 240_000,
}, async (t) => {
  if (!requireTools(t, ['chromium'])) return;
  await buildRenderer();
  const browser = await launchChromium();
  t.after(() => browser.close());

  await t.test('2,000 devices: a small DOM, natural order, the search box in view at the end', async () => {
    const page = await browser.newPage({ viewport: { width: 960, height: 680 } });
    await serveDist(page);
    await openFake(page, { peers: PEERS });
    const app = new AppPage(page);
    await app.peerRows().first().waitFor({ timeout: 20_000 });
    assert.equal((await page.getByTestId('peer-count').textContent())?.trim(), '2000 of 2000');
    const elements = await page.evaluate('document.getElementsByTagName("*").length');
    assert.ok(Number(elements) < 3000, `the page has ${elements} elements for 2,000 devices (want < 3,000)`);

    // Online first, then names with numbers in numeric order: node-12, 13, 14, 16 (15 is offline), … node-18
    // long before node-178 (a plain string sort puts node-100… first and node-178 before node-18).
    await app.search('node-1');
    await page.waitForFunction('document.querySelector("[data-testid=peer-row]")?.dataset.peer === "node-12"', null, {
      timeout: 5000,
    });
    const names = await page
      .locator('[data-testid="peer-row"]')
      .evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { peer: string } }).dataset.peer));
    assert.deepEqual(names.slice(0, 6), ['node-12', 'node-13', 'node-14', 'node-16', 'node-17', 'node-18']);
    assert.ok(!names.slice(0, 6).includes('node-178'), 'node-178 comes after node-18');
    await app.search('');

    // Scrolled to the end: the last device is rendered and the search box is still on screen.
    await page.getByTestId('peer-list').evaluate((el) => {
      const box = el as unknown as { scrollTop: number; scrollHeight: number };
      box.scrollTop = box.scrollHeight;
    });
    await page.locator('[data-testid="peer-row"][aria-posinset="2000"]').waitFor({ timeout: 5000 });
    assert.ok(await page.getByTestId('peer-search').isVisible(), 'the search box is visible');
    const box = await page.getByTestId('peer-search').boundingBox();
    assert.ok(
      box && box.y >= 0 && box.y + box.height <= 680,
      `the search box is in the viewport: ${JSON.stringify(box)}`,
    );
    const after = await page.evaluate('document.getElementsByTagName("*").length');
    assert.ok(Number(after) < 3000, `after scrolling the page has ${after} elements`);
    await app.screenshot('fake-peers-scrolled-end');
    await page.close();
  });

  await t.test('keyboard: Escape from the details returns focus to the row; the filters narrow the list', async () => {
    const page = await browser.newPage({ viewport: { width: 960, height: 680 } });
    await serveDist(page);
    await openFake(page, { peers: '40' });
    const row = page.locator('[data-testid="peer-row"][data-peer="iris"] .peer-main');
    await row.focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('peer-details').waitFor({ timeout: 5000 });
    await page.keyboard.press('Escape');
    await page.getByTestId('peer-details').waitFor({ state: 'detached', timeout: 5000 });
    await page.waitForFunction('document.activeElement?.closest("[data-peer]")?.dataset.peer === "iris"', null, {
      timeout: 5000,
    });

    // 40 made-up devices, every fourth offline: 30 online.
    await page.getByTestId('filter-online').check();
    await page.waitForFunction('document.querySelector("[data-testid=peer-count]")?.textContent === "30 of 40"', null, {
      timeout: 5000,
    });
    assert.equal(await page.locator('[data-testid="peer-row"][data-online="false"]').count(), 0);
    await page.getByTestId('filter-can-receive').check();
    const count = (await page.getByTestId('peer-count').textContent()) ?? '';
    assert.ok(Number(count.split(' ')[0]) < 30, `fewer can receive files: ${count}`);
    assert.equal(await page.locator('[data-testid="peer-row"][data-file-target="false"]').count(), 0);
    await page.close();
  });

  await t.test(
    'userspace mode: a calm notice above 2,000 devices with both proxies, copy, why and full mode',
    async () => {
      const page = await browser.newPage({ viewport: { width: 960, height: 680 } });
      await serveDist(page);
      await openFake(page, { peers: PEERS, userspace: '1' });
      const app = new AppPage(page);
      const notice = page.getByTestId('userspace-notice');
      await notice.waitFor({ timeout: 20_000 });
      assert.equal(await notice.getAttribute('role'), 'note', 'a note, not an alert: nothing is wrong');
      assert.match((await notice.textContent()) ?? '', /runs without a network device, so apps reach the tailnet/);
      const address = (kind: string) =>
        page.locator(`[data-testid="proxy-address"][data-kind="${kind}"] [data-testid="proxy-value"]`).textContent();
      assert.equal(await address('socks5'), '127.0.0.1:1055');
      assert.equal(await address('http'), '127.0.0.1:1056');
      assert.match((await page.getByTestId('userspace-reason').textContent()) ?? '', /administrator rights/);
      assert.match((await page.getByTestId('userspace-full-mode').textContent()) ?? '', /^For full mode, .*daemon/);
      assert.equal(await page.locator('[data-testid="link-problem"], .health').count(), 0, 'no warning banner');

      await page.getByRole('button', { name: 'Copy the SOCKS5 proxy address' }).click();
      await page.locator('[data-testid="notice"]', { hasText: 'Copied 127.0.0.1:1055' }).waitFor({ timeout: 5000 });
      await page.getByRole('button', { name: 'Copy the HTTP proxy address' }).click();
      await page.waitForFunction('globalThis.__copied?.length === 2', null, { timeout: 5000 });
      assert.deepEqual(await page.evaluate('globalThis.__copied'), ['127.0.0.1:1055', '127.0.0.1:1056']);

      // The notice takes its place above the list; the list still renders few rows and keeps its search in view.
      assert.equal((await page.getByTestId('peer-count').textContent())?.trim(), '2000 of 2000');
      const elements = await page.evaluate('document.getElementsByTagName("*").length');
      assert.ok(Number(elements) < 3000, `the page has ${elements} elements for 2,000 devices (want < 3,000)`);
      await page.getByTestId('peer-list').evaluate((el) => {
        const box = el as unknown as { scrollTop: number; scrollHeight: number };
        box.scrollTop = box.scrollHeight;
      });
      await page.locator('[data-testid="peer-row"][aria-posinset="2000"]').waitFor({ timeout: 5000 });
      assert.ok(await page.getByTestId('peer-search').isVisible(), 'the search box is visible');
      await app.screenshot('fake-userspace-scrolled-end');

      // Settings: the proxies' addresses, checked before they are kept.
      await page.getByTestId('nav-settings').click();
      const socks = page.getByTestId('pref-socks5Listen');
      assert.equal(await socks.inputValue(), '127.0.0.1:1055');
      await socks.fill('192.168.1.5:1055');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      const err = page.getByTestId('settings-error');
      await err.waitFor({ timeout: 5000 });
      assert.match((await err.textContent()) ?? '', /^The SOCKS5 proxy must listen on this computer only/);
      assert.equal(await socks.getAttribute('aria-invalid'), 'true');
      await socks.fill('[::1]:9050');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor({ timeout: 5000 });
      assert.equal(await socks.inputValue(), '[::1]:9050');
      await page.getByTestId('nav-peers').click();
      const shown = page.locator('[data-testid="proxy-address"][data-kind="socks5"] [data-testid="proxy-value"]');
      // The snapshot with the new address follows the reply a moment later, as main pushes it.
      await shown.filter({ hasText: '[::1]:9050' }).waitFor({ timeout: 5000 });
      assert.equal(await shown.textContent(), '[::1]:9050', 'the notice shows the new address');
      await page.close();
    },
  );

  for (const scheme of ['light', 'dark'] as const) {
    await t.test(`every view in ${scheme}: no serious or critical axe violation`, async () => {
      const page = await browser.newPage({ viewport: { width: 960, height: 680 } });
      await serveDist(page);
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
      const app = new AppPage(page);
      const failures: string[] = [];
      for (const view of VIEWS) {
        await openFake(page, view.params);
        await page.locator('.header, .splash').first().waitFor({ timeout: 20_000 });
        await view.reach?.(page);
        // Toasts and animations settle; the scan sees what stays on screen.
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
