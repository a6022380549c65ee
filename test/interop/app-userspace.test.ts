// The app without root, end to end: its main side (the controller and the engine link main/electron/main.ts opens,
// served to the window as `trellis web` serves it; lab/app-shell.mjs) runs as uid 65534 with no capabilities in a
// lab namespace where no daemon runs. Its own engine cannot open a TUN there, so 'auto' networking falls back to
// userspace networking: the window, in Debian's chromium in the same namespace, logs in to Headscale with an auth
// key, lists the tailscaled peer, and says calmly that Trellis runs without a network device — with the SOCKS5 and
// HTTP proxy addresses (copy puts the address on the clipboard), why, and how to get full mode — instead of the
// "needs administrator rights" warning; curl in that namespace fetches a page from the peer through each proxy
// shown; a new SOCKS5 address saved in Settings restarts the engine, and the notice and the proxy move there; a
// port forward added in Settings' "Services on this computer" lets the tailscaled peer reach a server that listens
// on the app's loopback only, and removing it shuts the port again.
// Screenshots go to test-artifacts/app-web/.
import assert from 'node:assert/strict';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isolatedEnv } from '../isolated-env.ts';
import { AppPage, buildRenderer, CHROMIUM, launchChromium } from './lab/app-page.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

const NOBODY = 65534;
const APP_SHELL = fileURLToPath(new URL('./lab/app-shell.mjs', import.meta.url));
const URL_LINE = /Trellis web UI: (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/;
const SOCKS5 = '127.0.0.1:1055';
const HTTP_PROXY = '127.0.0.1:1056';
/** Where the user moves the SOCKS5 proxy in Settings. */
const MOVED_SOCKS5 = '127.0.0.1:1080';

/** A web page on the tailscaled peer's host, on every address (its tailnet one included). */
const PAGE = 'hello from ts-b';
const WEB_SERVER = `require('http').createServer((q,r)=>r.end(${JSON.stringify(PAGE)})).listen(8080,()=>console.log('listening'))`;
/** A server in the app's namespace on its loopback only: the tailnet reaches it only through a port forward. */
const LOCAL_PAGE = 'hello from the loopback of the app';
const LOCAL_PORT = 9091;
const FORWARDED_PORT = 8081;
const LOCAL_SERVER = `require('http').createServer((q,r)=>r.end(${JSON.stringify(LOCAL_PAGE)})).listen(${LOCAL_PORT},'127.0.0.1',()=>console.log('listening'))`;

test('the app as uid 65534 without a daemon: userspace networking, said plainly, with its proxies', {
  timeout: 300_000,
}, async (t) => {
  if (!ready(t) || !requireTools(t, ['chromium', 'curl'])) return;
  await buildRenderer();
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b']);
    const [ha, hb] = [tn.hosts.a, tn.hosts.b];
    if (!ha || !hb) throw new Error('tailnet lab without hosts a, b');
    const hs = tn.headscale;
    const tsB = await startTailscaled(hb, { name: 'b', env: TS_ENV });
    await tsB.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-b' });

    // The app's home belongs to the user it runs as; no daemon socket exists at the path it tries first.
    const work = await mkdtemp(path.join(tmpdir(), 'trellis-app-userspace-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    await chmod(work, 0o755);
    const env = isolatedEnv(work);
    for (const dir of [path.join(work, 'home'), env.XDG_CONFIG_HOME]) await chown(dir, NOBODY, NOBODY);
    const socket = path.join(work, 'no-daemon', 'trellis.sock');
    const shell = ha.spawn([process.execPath, APP_SHELL, `${NOBODY}:${NOBODY}`, socket], { label: 'app', env });
    if (!(await shell.waitForOutput(URL_LINE, 60_000))) {
      throw new Error(`the app's main side printed no URL:\n${shell.output()}`);
    }
    const url = URL_LINE.exec(shell.output())?.[1] as string;

    // Chromium in the app's namespace, where its 127.0.0.1 is: a wrapper playwright starts instead of chromium.
    const wrapper = path.join(work, 'chromium-in-ns');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${ha.name} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    const browser = await launchChromium(wrapper);
    try {
      const context = await browser.newContext({
        viewport: { width: 1100, height: 760 },
        permissions: ['clipboard-read', 'clipboard-write'],
      });
      const page = await context.newPage();
      page.on('console', (m) => {
        if (m.type() === 'error') t.diagnostic(`[page] ${m.text()}`);
      });
      const app = new AppPage(page);
      const { claim, report } = claims(t, async () => `${lab.diagnostics()}\n--- app:\n${shell.output().slice(-6000)}`);

      await claim(
        '0. the app runs as uid 65534 with no capabilities; no daemon answers, so it has its own engine',
        async (st) => {
          const status = await ha.exec(['cat', `/proc/${shell.pid}/status`]);
          const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
          st.diagnostic(`Uid: ${field('Uid')}; CapEff: ${field('CapEff')}; CapPrm: ${field('CapPrm')}`);
          assert.deepEqual(field('Uid').split(/\s+/), ['65534', '65534', '65534', '65534'], 'every uid is 65534');
          assert.equal(BigInt(`0x${field('CapEff')}`), 0n, 'no effective capability');
          assert.equal(BigInt(`0x${field('CapPrm')}`), 0n, 'no permitted capability');
          assert.match(shell.output(), /^engine link: worker$/m, 'its own engine (a worker thread)');
        },
      );

      await claim('1. log in with an auth key through the window → Running, the tailscaled peer listed', async () => {
        await page.goto(url);
        await app.logIn(hs.url, tn.authKey);
        await app.waitForState('Running', 90_000);
        await app.peerRow('ts-b').waitFor({ timeout: 30_000 });
        await app.screenshot('userspace-1-peers');
      });

      await claim(
        '2. the engine fell back to userspace networking; the window says so with both proxies',
        async (st) => {
          const notice = page.getByTestId('userspace-notice');
          const shown = await notice
            .waitFor({ timeout: 30_000 })
            .then(() => true)
            .catch(() => false);
          if (!shown) {
            await app.screenshot('userspace-fail-no-notice');
            const warnings = (await page.locator('.health li').allTextContents()).join(' | ') || 'none';
            assert.fail(
              "the window shows no userspace notice: the engine's status has no networking in userspace mode, so " +
                "'auto' networking did not fall back to the netstack (the engine side is issue 15's us-engine " +
                `branch). Health warnings shown: ${warnings}`,
            );
          }
          const address = (kind: string) =>
            page
              .locator(`[data-testid="proxy-address"][data-kind="${kind}"] [data-testid="proxy-value"]`)
              .textContent();
          assert.equal(await address('socks5'), SOCKS5);
          assert.equal(await address('http'), HTTP_PROXY);
          assert.match((await notice.textContent()) ?? '', /runs without a network device, so apps reach the tailnet/);
          const reason = (await page.getByTestId('userspace-reason').textContent()) ?? '';
          st.diagnostic(`reason: ${reason}`);
          assert.match(reason, /^[A-Z].*\.$/, `the reason is a sentence: ${reason}`);
          assert.match((await page.getByTestId('userspace-full-mode').textContent()) ?? '', /daemon/);
          const warnings = await page.locator('.health li').allTextContents();
          assert.ok(!warnings.some((w) => /administrator rights/.test(w)), `no privilege warning: ${warnings}`);
          await app.screenshot('userspace-2-notice');
        },
      );

      await claim('3. copy puts the SOCKS5 proxy address on the clipboard', async () => {
        await page.getByRole('button', { name: 'Copy the SOCKS5 proxy address' }).click();
        await page.locator('[data-testid="notice"]', { hasText: `Copied ${SOCKS5}` }).waitFor({ timeout: 10_000 });
        assert.equal(await page.evaluate('navigator.clipboard.readText()'), SOCKS5);
      });

      const curl = (proxy: string[], url: string) =>
        ha.run(['curl', '-sS', '--max-time', '20', ...proxy, url], { timeoutMs: 30_000 });
      const peerB = async () => {
        const self = (await tsB.status()).Self;
        return {
          ip: self?.TailscaleIPs.find((a) => !a.includes(':')) ?? '',
          name: (self?.DNSName ?? '').replace(/\.$/, ''),
        };
      };
      await claim(
        '4. apps reach the tailnet through the proxies shown: curl fetches a page from the peer',
        async (st) => {
          const web = hb.spawn([process.execPath, '-e', WEB_SERVER], { label: 'web on b' });
          assert.ok(await web.waitForOutput(/listening/, 10_000), `the peer's web server: ${web.output()}`);
          const b = await peerB();
          st.diagnostic(`peer ${b.name} ${b.ip}`);
          const bySocks = await curl(['--socks5-hostname', SOCKS5], `http://${b.name}:8080/`);
          assert.equal(bySocks.stdout, PAGE, `through SOCKS5 by MagicDNS name: ${bySocks.stderr}`);
          const byHttp = await curl(['--proxy', `http://${HTTP_PROXY}`], `http://${b.ip}:8080/`);
          assert.equal(byHttp.stdout, PAGE, `through the HTTP proxy by address: ${byHttp.stderr}`);
        },
      );

      await claim(
        '5. a new SOCKS5 address in Settings restarts the engine; the notice and the proxy move there',
        async () => {
          await page.getByTestId('nav-settings').click();
          await page.getByTestId('pref-socks5Listen').fill(MOVED_SOCKS5);
          await page.getByRole('button', { name: 'Save', exact: true }).click();
          // The engine restarts (the window shows none for a moment), reconnects, and reports the new address.
          await app.waitForState('Running', 90_000);
          await page.getByTestId('nav-peers').click();
          await page
            .locator('[data-testid="proxy-address"][data-kind="socks5"] [data-testid="proxy-value"]', {
              hasText: MOVED_SOCKS5,
            })
            .waitFor({ timeout: 60_000 });
          await app.screenshot('userspace-3-moved');
          const b = await peerB();
          const moved = await curl(['--socks5-hostname', MOVED_SOCKS5], `http://${b.name}:8080/`);
          assert.equal(moved.stdout, PAGE, `through SOCKS5 at its new address: ${moved.stderr}`);
          const old = await curl(['--socks5-hostname', SOCKS5], `http://${b.name}:8080/`);
          assert.notEqual(old.code, 0, 'nothing listens at the old address');
        },
      );
      await claim(
        '6. a port forward added in Settings: the tailscaled peer reaches a loopback-only server; removed, it cannot',
        async (st) => {
          const local = ha.spawn([process.execPath, '-e', LOCAL_SERVER], { label: 'loopback server on a' });
          t.after(() => local.stop());
          assert.ok(await local.waitForOutput(/listening/, 10_000), `the loopback server: ${local.output()}`);
          const self = (await tsB.status()).peers.find((p) => p.TailscaleIPs.length > 0);
          const ip = self?.TailscaleIPs.find((a) => !a.includes(':')) ?? '';
          assert.ok(ip, 'tailscaled lists the app as a peer with an IPv4 address');
          const url = `http://${ip}:${FORWARDED_PORT}/`;
          const fromB = () => hb.run(['curl', '-sS', '--max-time', '10', url], { timeoutMs: 20_000 });
          const before = await fromB();
          st.diagnostic(`before the forward: exit ${before.code} ${before.stderr.trim()}`);
          assert.notEqual(before.stdout, LOCAL_PAGE, 'nothing forwards yet');

          await page.getByTestId('nav-settings').click();
          const card = page.getByTestId('forwards-card');
          await card.waitFor({ timeout: 10_000 });
          assert.equal(await card.getAttribute('data-mode'), 'userspace');
          await page.getByTestId('forward-tailnet-port').fill(String(FORWARDED_PORT));
          await page.getByTestId('forward-local-port').fill(String(LOCAL_PORT));
          await page.getByTestId('forward-add').click();
          const row = page.locator(`[data-testid="forward-row"][data-tailnet-port="${FORWARDED_PORT}"]`);
          await row.waitFor({ timeout: 15_000 });
          assert.equal(await row.getAttribute('data-local-port'), String(LOCAL_PORT));
          assert.equal(await page.getByTestId('forward-error').count(), 0, 'no error shown');
          await app.screenshot('userspace-4-forward');
          const got = await waitUntil('the forward answering the peer', 20_000, async () => {
            const r = await fromB();
            return r.stdout === LOCAL_PAGE ? r.stdout : null;
          });
          assert.equal(got, LOCAL_PAGE, 'from the tailscaled peer through the forward to 127.0.0.1');

          await page.getByRole('button', { name: `Remove port ${FORWARDED_PORT}` }).click();
          await row.waitFor({ state: 'detached', timeout: 15_000 });
          const closed = await waitUntil('the forward stopping', 20_000, async () => {
            const r = await fromB();
            return r.stdout === LOCAL_PAGE ? null : r;
          });
          st.diagnostic(`after removing it: exit ${closed.code} ${closed.stderr.trim()}`);
          assert.notEqual(closed.code, 0, 'the port is shut again');
        },
      );
      await report();
    } finally {
      await browser.close();
    }
  });
});
