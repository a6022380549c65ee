// The control plane against a real Headscale (v0.29.2): `trellis daemon` + the CLI verbs, on loopback.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { StatusSnapshot } from '../../main/engine/protocol.ts';
import { type Headscale, startHeadscale } from './lab/headscale.ts';
import { requireTools } from './lab/tools.ts';
import { startDaemon, type TrellisDaemon } from './lab/trellisd.ts';

const has = (s: StatusSnapshot, name: string) => s.peers.some((p) => p.name === name);

async function withParts(
  n: number,
  fn: (hs: Headscale, daemons: TrellisDaemon[], key: string) => Promise<void>,
): Promise<void> {
  const hs = await startHeadscale({});
  const daemons: TrellisDaemon[] = [];
  try {
    const user = await hs.createUser('alice');
    const key = await hs.createAuthKey(user, { reusable: true, expiration: '1h' });
    for (let i = 0; i < n; i++) daemons.push(await startDaemon());
    await fn(hs, daemons, key);
  } catch (e) {
    console.error(`headscale output:\n${hs.output().slice(-4000)}`);
    for (const d of daemons) console.error(`daemon output:\n${d.process.output().slice(-4000)}`);
    throw e;
  } finally {
    for (const d of daemons) await d.dispose();
    await hs.stop();
  }
}

async function up(d: TrellisDaemon, hs: Headscale, key: string, hostname: string): Promise<StatusSnapshot> {
  const r = await d.cli(['up', '--login-server', hs.url, '--auth-key', key, '--hostname', hostname], 60_000);
  assert.equal(r.code, 0, `trellis up failed: ${r.stderr}`);
  const s = await d.status();
  assert.equal(s.state, 'Running');
  return s;
}

describe('control plane against Headscale', () => {
  test('auth key: up reaches Running, Headscale lists the node with the addresses status reports', async (t) => {
    if (!requireTools(t, ['headscale'])) return;
    await withParts(1, async (hs, [a], key) => {
      // A wrong key first: Headscale's refusal reaches the user as a sentence, and nothing is registered.
      const bad = await a.cli([
        'up',
        '--login-server',
        hs.url,
        '--auth-key',
        'hskey-auth-bogus-0000',
        '--hostname',
        'alpha',
      ]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /refused the login/);
      assert.equal((await hs.nodes()).length, 0);
      const s = await up(a, hs, key, 'alpha');
      const nodes = await hs.nodes();
      assert.equal(nodes.length, 1);
      assert.equal(nodes[0].name, 'alpha');
      assert.deepEqual([...(s.self?.addresses ?? [])].sort(), [...nodes[0].ipAddresses].sort());
      assert.equal(s.self?.name, 'alpha');
      assert.equal(s.self?.user, 'alice');

      // A Hostinfo change on a running node goes back to control (a lite map update).
      const r = await a.cli(['up', '--login-server', hs.url, '--hostname', 'alpha2'], 30_000);
      assert.equal(r.code, 0, r.stderr);
      let renamed = '';
      for (let i = 0; i < 50 && renamed !== 'alpha2'; i++) {
        renamed = (await hs.nodes())[0]?.name ?? '';
        if (renamed !== 'alpha2') await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(renamed, 'alpha2', 'Headscale saw the new host name');
    });
  });

  test('a second node appears within 5 s, a rename shows up, a deleted node disappears within 5 s', async (t) => {
    if (!requireTools(t, ['headscale'])) return;
    await withParts(2, async (hs, [a, b], key) => {
      await up(a, hs, key, 'alpha');
      await up(b, hs, key, 'beta');
      const t0 = Date.now();
      const seen = await a.waitFor((s) => has(s, 'beta'), 5_000);
      assert.ok(has(seen, 'beta'), 'alpha learns about beta from the stream');
      t.diagnostic(`beta visible to alpha ${((Date.now() - t0) / 1000).toFixed(2)} s after beta was Running`);
      const betaId = (await hs.nodes()).find((n) => n.name === 'beta')?.id;
      assert.ok(betaId !== undefined);
      await hs.renameNode(betaId, 'gamma');
      const renamed = await a.waitFor((s) => has(s, 'gamma'), 5_000);
      assert.ok(has(renamed, 'gamma') && !has(renamed, 'beta'), 'the rename reaches alpha');
      const self = await b.waitFor((s) => s.self?.name === 'gamma', 5_000);
      assert.equal(self.self?.name, 'gamma', 'and beta itself');
      const t1 = Date.now();
      await hs.deleteNode(betaId);
      const gone = await a.waitFor((s) => s.peers.length === 0, 5_000);
      assert.equal(gone.peers.length, 0, 'the deleted node is gone');
      t.diagnostic(`deletion reached alpha in ${((Date.now() - t1) / 1000).toFixed(2)} s`);
    });
  });

  test('interactive login: the daemon reports the AuthURL, approval with the headscale CLI gives Running', async (t) => {
    if (!requireTools(t, ['headscale'])) return;
    await withParts(1, async (hs, [a]) => {
      const upRun = a.cli(['up', '--login-server', hs.url, '--hostname', 'inter', '--timeout', '60'], 90_000);
      const pending = await a.waitFor((s) => s.authURL !== undefined, 15_000);
      const url = pending.authURL ?? '';
      assert.match(url, /\/register\/hskey-authreq-[A-Za-z0-9_-]{24}$/);
      assert.equal(pending.state, 'NeedsLogin');
      await hs.approve(url.slice(url.lastIndexOf('/') + 1), 'alice');
      const r = await upRun;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /To authenticate, visit:\s+http/);
      assert.equal((await a.status()).state, 'Running');
      assert.equal((await hs.nodes())[0]?.name, 'inter');
    });
  });

  test('expiry gives NeedsLogin with the reason; logout works; the state dir survives a daemon restart', async (t) => {
    if (!requireTools(t, ['headscale'])) return;
    await withParts(2, async (hs, [a, b], key) => {
      const before = await up(a, hs, key, 'keeper');
      await a.restart();
      const after = await a.waitFor((s) => s.state === 'Running', 15_000);
      assert.equal(after.state, 'Running', 'back to Running after a restart, without logging in');
      assert.deepEqual(after.self?.addresses, before.self?.addresses);
      assert.equal(after.self?.id, before.self?.id);
      assert.equal((await hs.nodes()).length, 1, 'no new registration');

      await up(b, hs, key, 'expiring');
      const id = (await hs.nodes()).find((n) => n.name === 'expiring')?.id;
      assert.ok(id !== undefined);
      await hs.expireNode(id);
      const expired = await b.waitFor((s) => s.state === 'NeedsLogin', 10_000);
      assert.equal(expired.state, 'NeedsLogin');
      assert.match(expired.reason ?? '', /expired/);
      // Logging in again re-registers with a fresh node key: the same node, running again.
      await up(b, hs, key, 'expiring');
      const again = await hs.nodes();
      assert.equal(again.filter((n) => n.name === 'expiring').length, 1, 'no duplicate node');

      const out = await a.cli(['logout']);
      assert.equal(out.code, 0, out.stderr);
      assert.equal((await a.status()).state, 'NeedsLogin');
      const keeper = (await hs.nodes()).find((n) => n.name === 'keeper');
      assert.ok(
        keeper?.expiry && keeper.expiry.getTime() <= Date.now() + 1000,
        'Headscale expired the logged-out node',
      );
    });
  });

  test('Headscale killed and restarted: the stream comes back by itself, no duplicate node', async (t) => {
    if (!requireTools(t, ['headscale'])) return;
    await withParts(2, async (hs, [a, b], key) => {
      await up(a, hs, key, 'survivor');
      await hs.kill();
      const lost = await a.waitFor((s) => s.health.some((h) => h.code === 'control-unreachable'), 10_000);
      assert.ok(lost.health.length > 0, 'the loss is reported as health');
      await hs.restart();
      // A node registered after the restart can only reach survivor through a new map stream.
      await up(b, hs, key, 'newcomer');
      const back = await a.waitFor((s) => has(s, 'newcomer') && s.health.length === 0, 40_000);
      assert.ok(has(back, 'newcomer'), 'the stream is back');
      assert.equal(back.state, 'Running');
      const names = (await hs.nodes()).map((n) => n.name).sort();
      assert.deepEqual(names, ['newcomer', 'survivor']);
    });
  });
});
