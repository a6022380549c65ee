// The window end to end, as a user meets it: `trellis web` bridging the UI to a real `trellis daemon` (TUN in
// its namespace), Headscale as control server and an official tailscaled peer, driven in Debian's chromium.
// A wrong auth key and an unreachable server each get one sentence under the field at fault; log in with an auth key
// through the UI, find the peer, disconnect (the list greys, a Connect prompt) and connect, drop a file on the peer
// (an upload row at once, then tailscaled gets it whole), receive one from tailscaled (a toast and a badge) and
// save it into trellis web's --save-dir. trellis web and the daemon run with temporary homes. Screenshots of each
// view go to test-artifacts/app-web/.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { buildRenderer, openWindowOn } from './lab/app-page.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('desktop UI in chromium: login, peers, search, connect toggle, Taildrop both ways with tailscaled', {
  timeout: 300_000,
}, async (t) => {
  if (!ready(t) || !requireTools(t, ['chromium'])) return;
  await buildRenderer();
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b']);
    const [ha, hb] = [tn.hosts.a, tn.hosts.b];
    if (!ha || !hb) throw new Error('tailnet lab without hosts a, b');
    const hs = tn.headscale;
    const node = await startTrellisNode(ha, {
      hostname: 'unused',
      loginServer: hs.url,
      authKey: tn.authKey,
      login: false,
    });
    const tsB = await startTailscaled(hb, { name: 'b', env: TS_ENV });
    await tsB.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-b' });
    const ipB = (await tsB.status()).Self?.TailscaleIPs.find((a) => !a.includes(':')) ?? '';
    assert.ok(ipB, 'tailscaled has a tailnet IPv4');
    const { web, page, app } = await openWindowOn(t, node.socket);
    const work = await mkdtemp(path.join(tmpdir(), 'trellis-app-web-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    const { claim, report } = claims(
      t,
      async () => `${lab.diagnostics()}
--- trellis web:\n${web.process.output()}\n--- daemon:\n${node.output().slice(-4000)}`,
    );

    await claim('0. a wrong auth key and an unreachable server each give one sentence under that field', async (st) => {
      await page.goto(web.url);
      await app.screenshot('1-login');
      const errors = page.getByTestId('login-error');
      const oneSentence = async (field: string): Promise<string> => {
        await page.locator(`[data-testid="login-error"][data-field="${field}"]`).waitFor({ timeout: 30_000 });
        assert.equal(await errors.count(), 1, 'one error on the form');
        const text = (await errors.locator('.error-text').textContent())?.trim() ?? '';
        assert.match(text, /^[A-Z].*[.]$/, `a sentence: ${text}`);
        assert.equal((text.match(/[.!?](\s|$)/g) ?? []).length, 1, `exactly one sentence: ${text}`);
        const detail = (await errors.locator('details code').textContent()) ?? '';
        st.diagnostic(`${field}: "${text}" (details: ${detail.slice(0, 160)})`);
        return text;
      };
      await app.logIn(hs.url, 'hskey-auth-this-key-is-not-valid');
      const keyText = await oneSentence('authKey');
      assert.match(keyText, /auth key/);
      assert.equal(await page.getByTestId('auth-key').getAttribute('aria-invalid'), 'true');
      assert.notEqual(await page.getByTestId('control-url').getAttribute('aria-invalid'), 'true', 'the URL is not red');
      await app.screenshot('1-login-wrong-key');
      // Port 9 on the daemon's own loopback: nothing listens, the connection is refused at once.
      await app.logIn('http://127.0.0.1:9', '');
      const urlText = await oneSentence('controlURL');
      assert.match(urlText, /127\.0\.0\.1:9/);
      assert.equal(await page.getByTestId('control-url').getAttribute('aria-invalid'), 'true');
      assert.notEqual(await page.getByTestId('auth-key').getAttribute('aria-invalid'), 'true');
      await app.screenshot('1-login-unreachable');
    });

    await claim(
      '1. log in with an auth key through the UI → Running, the tailscaled peer listed with its address',
      async (st) => {
        await app.logIn(hs.url, tn.authKey);
        await app.waitForState('Running', 90_000);
        const row = app.peerRow('ts-b');
        await row.waitFor({ timeout: 30_000 });
        assert.equal((await row.getByTestId('peer-ip').textContent())?.trim(), ipB);
        const s = await node.status();
        assert.equal(s.state, 'Running', 'the daemon itself is Running');
        assert.equal(s.prefs.controlURL, hs.url.replace(/\/+$/, ''));
        st.diagnostic(`self ${s.self?.name} ${s.self?.addresses.join(' ')}; peer ts-b ${ipB}`);
        await app.screenshot('2-peers');
      },
    );

    await claim('2. search filters the peer list', async () => {
      await app.search('no-such-device');
      await page.getByTestId('peers-empty').waitFor({ timeout: 5000 });
      assert.equal(await app.peerRows().count(), 0);
      await app.search('TS-B');
      await app.peerRow('ts-b').waitFor({ timeout: 5000 });
      assert.equal(await app.peerRows().count(), 1);
      await app.search(ipB);
      await app.peerRow('ts-b').waitFor({ timeout: 5000 });
      await app.screenshot('3-search');
      await app.search('');
    });

    await claim('3. disconnect greys the list with a Connect prompt; Connect brings it back', async () => {
      assert.equal(await page.getByTestId('peer-list').getAttribute('data-live'), 'true');
      await app.toggleConnection();
      await app.waitForState('Stopped', 30_000);
      assert.equal((await node.status()).state, 'Stopped');
      await page.locator('[data-testid="peer-list"][data-live="false"]').waitFor({ timeout: 10_000 });
      const status = (await app.peerRow('ts-b').getByTestId('peer-status').textContent())?.trim();
      assert.equal(status, 'Unknown', 'no green "Online" for a peer this device cannot see');
      assert.equal(await page.locator('.count-online').count(), 0, 'no "N online" while disconnected');
      const prompt = page.getByTestId('disconnected-prompt');
      assert.match((await prompt.textContent()) ?? '', /^Disconnected/);
      await app.screenshot('4-disconnected');
      await prompt.getByRole('button', { name: 'Connect' }).click();
      await app.waitForState('Running', 60_000);
      await page.locator('[data-testid="peer-list"][data-live="true"]').waitFor({ timeout: 10_000 });
      assert.equal((await node.status()).state, 'Running');
    });

    await claim('4. a file dropped on the peer reaches tailscaled whole; the UI showed its progress', async (st) => {
      const bytes = randomBytes(24 << 20);
      const name = 'dropped.bin';
      const row = app.peerRow('ts-b');
      // Taildrop needs the peer as a file target (its PeerAPI in the netmap), and the window must know it.
      await page.locator('[data-testid="peer-row"][data-peer="ts-b"][data-file-target="true"]').waitFor({
        timeout: 30_000,
      });
      const progress = await app.recordProgress();
      const order = await app.recordFirstSeen(['upload-row', 'transfer-row']);
      await app.dropFile(row, name, bytes);
      // The upload and the send begin: a transfer row appears, or an error toast says why not. The peers view
      // shows only active transfers, and 24 MB can go in less than a poll of the page: the recorder saw the row.
      // (Polled from here: the page's CSP refuses the string evaluation waitForFunction would need.)
      const refused = page.locator('[data-testid="notice"][data-level="error"]');
      for (let waited = 0; !(await order()).includes('transfer-row') && (await refused.count()) === 0; waited += 100) {
        if (waited >= 60_000) assert.fail('no transfer row and no error within 60 s of the drop');
        await new Promise((r) => setTimeout(r, 100));
      }
      if (await refused.count()) assert.fail(`the drop failed: ${await refused.first().textContent()}`);
      assert.deepEqual(await order(), ['upload-row', 'transfer-row'], 'an upload row showed before the send began');
      // The peers view shows only active transfers; the Files view keeps finished ones.
      await page.getByTestId('nav-files').click();
      const done = page.locator(`[data-testid="transfer-row"][data-name="${name}"][data-state="done"]`);
      await done.waitFor({ timeout: 120_000 }).catch(async (e) => {
        await app.screenshot('fail-transfer');
        const rows = await page.getByTestId('transfer-row').allTextContents();
        throw new Error(`${(e as Error).message}\ntransfer rows: ${JSON.stringify(rows)}`);
      });
      const seen = await progress();
      st.diagnostic(`progress values seen: ${seen.length}, e.g. ${JSON.stringify(seen.slice(0, 4))}`);
      // The engine reports the first MiB at once, so a partly filled bar is always drawn before the full one.
      assert.ok(
        seen.some((p) => p.now > 0 && p.now < bytes.length),
        'the bar showed the transfer part way',
      );
      assert.ok(
        seen.every((p) => p.max === 0 || p.max === bytes.length),
        'progress counts the file size',
      );
      assert.equal(seen[seen.length - 1].now, bytes.length, 'the bar ended full');
      await app.screenshot('5-files-sent');
      const inbox = path.join(work, 'b-got');
      await mkdir(inbox);
      const g = await tsB.cli(['file', 'get', '--wait', inbox], 60_000);
      assert.equal(g.code, 0, `tailscale file get: ${g.stderr}`);
      assert.equal(sha(await readFile(path.join(inbox, name))), sha(bytes), 'tailscaled received the dropped file');
    });

    await claim('5. a file sent from tailscaled appears in the received list; Save puts it in --save-dir', async () => {
      const name = 'from-tailscaled.txt';
      const file = path.join(work, name);
      const bytes = randomBytes(64 << 10);
      await writeFile(file, bytes);
      const ipA = (await node.ip()).v4;
      // Looking at the device list when it arrives: a toast says so and the Files tab counts it.
      await page.getByTestId('nav-peers').click();
      const r = await tsB.cli(['file', 'cp', file, `${ipA}:`], 60_000);
      assert.equal(r.code, 0, `tailscale file cp: ${r.stderr}${r.stdout}`);
      const toast = page.locator('[data-testid="notice"]', { hasText: `Received ${name} from` });
      await toast.waitFor({ timeout: 30_000 });
      const badge = page.getByTestId('files-unseen');
      await badge.waitFor({ timeout: 10_000 });
      assert.match((await badge.textContent()) ?? '', /^1 new$/);
      await app.screenshot('6-received-toast');
      await page.getByTestId('nav-files').click();
      await badge.waitFor({ state: 'detached', timeout: 5000 });
      const waiting = page.locator(`[data-testid="received-row"][data-name="${name}"][data-where="inbox"]`);
      await waiting.waitFor({ timeout: 30_000 });
      // The page names no folder: the note and the saved file are in the one trellis web was started with.
      const note = (await page.getByTestId('save-dir-note').textContent()) ?? '';
      assert.ok(note.includes(web.saveDir), `the note names ${web.saveDir}: ${note}`);
      await app.screenshot('6-files-received');
      await waiting.getByRole('button', { name: 'Save', exact: true }).click();
      const saved = page.locator('[data-testid="notice"][data-level="info"]', { hasText: 'Saved 1 file to' });
      const failed = page.locator('[data-testid="notice"][data-level="error"]');
      await saved.or(failed).first().waitFor({ timeout: 30_000 });
      if (await failed.count()) assert.fail(`Save failed: ${await failed.first().textContent()}`);
      assert.ok((await saved.textContent())?.includes(web.saveDir), 'the notice names the folder');
      await waiting.waitFor({ state: 'detached', timeout: 10_000 });
      // The save folder is watched: the file is listed again, now as saved there.
      const savedRow = page.locator(`[data-testid="received-row"][data-name="${name}"][data-where="folder"]`);
      await savedRow.waitFor({ timeout: 10_000 });
      assert.equal(sha(await readFile(path.join(web.saveDir, name))), sha(bytes), 'saved whole into --save-dir');
      await page.getByTestId('nav-settings').click();
      const autoSave = page.getByTestId('auto-save');
      assert.equal(await autoSave.isChecked(), false, 'auto-save starts off in a fresh home');
      const label = (await page.locator('label', { has: autoSave }).textContent()) ?? '';
      assert.ok(label.includes(web.saveDir), `the switch names ${web.saveDir}: ${label}`);
      await app.screenshot('7-settings');
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.getByTestId('nav-peers').click();
      await app.screenshot('8-peers-dark');
    });
    await claim(
      '6. log out, then log in without a key: the window shows the login URL; approving it gives Running',
      async (st) => {
        await page.emulateMedia({ colorScheme: 'light' });
        await page.getByTestId('nav-settings').click();
        await page.getByRole('button', { name: 'Log out…' }).click();
        await page.getByRole('button', { name: 'Log out', exact: true }).click();
        await page.getByTestId('login-view').waitFor({ timeout: 30_000 });
        assert.equal((await node.status()).state, 'NeedsLogin', 'the daemon logged out');
        await app.logIn(hs.url, '');
        const shown = page.getByTestId('auth-url');
        await shown.waitFor({ timeout: 30_000 });
        const url = (await shown.textContent())?.trim() ?? '';
        st.diagnostic(`login URL shown: ${url}`);
        assert.match(url, /\/register\/hskey-authreq-[A-Za-z0-9_-]+$/);
        assert.ok(await page.getByTestId('login-submit').isDisabled(), '"Log in" waits while a login is pending');
        await app.screenshot('9-login-url');
        // Cancel gives the login up (its URL goes); Log in starts a fresh one.
        await page.getByTestId('login-cancel').click();
        await shown.waitFor({ state: 'detached', timeout: 30_000 });
        assert.ok(await page.getByTestId('login-submit').isEnabled(), '"Log in" is back');
        assert.equal((await node.status()).authURL, undefined, 'the daemon forgot the cancelled login');
        await page.getByTestId('login-submit').click();
        await shown.waitFor({ timeout: 30_000 });
        const again = (await shown.textContent())?.trim() ?? '';
        assert.notEqual(again, url, 'a new login URL');
        await hs.approve(again.slice(again.lastIndexOf('/') + 1), tn.user);
        await app.waitForState('Running', 60_000);
        // Back on the device list, not on Settings where the logout was.
        await app.peerRow('ts-b').waitFor({ timeout: 30_000 });
        assert.equal(await page.getByTestId('nav-peers').getAttribute('aria-current'), 'page');
      },
    );
    await report();
  });
});
