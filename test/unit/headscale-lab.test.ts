// Proves the Headscale lab helper against the real server (v0.29.2 from test/setup/prereqs.sh): start on loopback,
// users, pre-auth keys, the Noise /key endpoint, restart with the same database, and a stop that leaves nothing.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { HEADSCALE_VERSION, headscaleBinary, parseNodes, startHeadscale } from '../interop/lab/headscale.ts';
import { Lab } from '../interop/lab/netns.ts';
import { execCommand } from '../interop/lab/proc.ts';
import { requireTools } from '../interop/lab/tools.ts';

function pidGone(pid: number | undefined): boolean {
  if (pid === undefined) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

test('parseNodes maps the snake_case, omitempty JSON of `nodes list -o json`', () => {
  const json = JSON.stringify([
    {
      id: 1,
      machine_key: 'mkey:aa',
      node_key: 'nodekey:bb',
      ip_addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'],
      name: 'ts1',
      user: { id: 1, name: 'alice' },
      expiry: { seconds: -62135596800 },
      last_seen: { seconds: 1700000000, nanos: 5e8 },
      given_name: 'ts1',
    },
  ]);
  const [n] = parseNodes(json);
  assert.ok(n);
  assert.equal(n.id, 1);
  assert.equal(n.user, 'alice');
  assert.equal(n.online, false); // omitted when false
  assert.equal(n.expiry, null);
  assert.equal(n.lastSeen?.getTime(), 1700000000500);
  assert.deepEqual(n.ipAddresses, ['100.64.0.1', 'fd7a:115c:a1e0::1']);
  assert.deepEqual(n.tags, []);
  assert.deepEqual(parseNodes('[]'), []);
  assert.deepEqual(parseNodes('null'), []);
});

test('headscale: start on loopback, user, auth key, /key, restart, stop', { timeout: 90_000 }, async (t) => {
  if (!requireTools(t, ['headscale'])) return;
  const version = await execCommand(headscaleBinary() ?? 'headscale', ['version']);
  assert.match(version, new RegExp(HEADSCALE_VERSION.replaceAll('.', '\\.')), `headscale version: ${version}`);

  const lab = new Lab();
  t.after(() => lab.cleanup());
  const hs = await startHeadscale({ lab });
  try {
    assert.match(hs.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(existsSync(hs.configPath));

    const alice = await hs.createUser('alice');
    assert.equal(alice.name, 'alice');
    assert.ok(Number(alice.id) > 0, `user id ${alice.id}`);
    const key = await hs.createAuthKey(alice, { reusable: true, expiration: '24h' });
    assert.match(key, /^hskey-auth-/);
    const byName = await hs.createAuthKey('alice', { ephemeral: true });
    assert.match(byName, /^hskey-auth-/);
    assert.notEqual(byName, key);
    assert.deepEqual(await hs.nodes(), []);

    const r = await hs.get('/key?v=113');
    assert.equal(r.status, 200);
    const keys = JSON.parse(r.body) as { publicKey?: string };
    assert.match(keys.publicKey ?? '', /^mkey:[0-9a-f]{64}$/);
    assert.equal(keys.publicKey, hs.publicKey);

    // interactive-login approval, against a pending registration made by `debug create-node`
    const authId = await hs.createPendingNode('dbg1', 'alice');
    assert.match(authId, /^hskey-authreq-.{24}$/);
    assert.deepEqual(await hs.nodes(), []);
    await hs.approve(authId, 'alice');
    await assert.rejects(hs.approve(authId, 'alice'), /not found in registration cache/);
    const [node] = await hs.nodes();
    assert.ok(node);
    assert.equal(node.name, 'dbg1');
    assert.equal(node.givenName, 'dbg1');
    assert.equal(node.user, 'alice');
    assert.equal(node.online, false);
    assert.equal(node.expiry, null);
    assert.deepEqual(node.ipAddresses, ['100.64.0.1', 'fd7a:115c:a1e0::1']);
    assert.match(node.machineKey, /^mkey:[0-9a-f]{64}$/);
    assert.match(node.nodeKey, /^nodekey:[0-9a-f]{64}$/);
    await hs.renameNode(node.id, 'renamed');
    await hs.expireNode(node.id);
    const [after] = await hs.nodes();
    assert.equal(after?.givenName, 'renamed');
    assert.ok(after?.expiry && after.expiry.getTime() <= Date.now() + 1_000, `expiry ${after?.expiry}`);

    const firstPid = hs.process.pid;
    await hs.restart();
    assert.ok(pidGone(firstPid), 'old headscale still running after restart');
    assert.notEqual(hs.process.pid, firstPid);
    // same database and Noise key
    assert.deepEqual(
      (await hs.users()).map((u) => u.name),
      ['alice'],
    );
    assert.equal(JSON.parse((await hs.get('/key?v=113')).body).publicKey, keys.publicKey);
    assert.deepEqual(
      (await hs.nodes()).map((n) => n.givenName),
      ['renamed'],
    );
    await hs.deleteNode(node.id);
    assert.deepEqual(await hs.nodes(), []);

    await hs.kill();
    assert.ok(hs.process.hasExited);
    await hs.restart();
    assert.equal((await hs.get('/health')).status, 200);

    const pid = hs.process.pid;
    await hs.stop();
    assert.ok(pidGone(pid), 'headscale still running after stop');
    assert.ok(!existsSync(hs.dir), 'temp dir left behind');
    await assert.rejects(hs.restart(), /stopped/);
  } catch (err) {
    console.error(`headscale output:\n${hs.output()}`);
    throw err;
  } finally {
    await hs.stop();
  }
});

test('headscale: lab teardown stops it and removes its temp dir', { timeout: 60_000 }, async (t) => {
  if (!requireTools(t, ['headscale'])) return;
  const lab = new Lab();
  t.after(() => lab.cleanup());
  const hs = await startHeadscale({
    lab,
    derp: false,
    policy: { acls: [{ action: 'accept', src: ['*'], dst: ['*:*'] }] },
  });
  const pid = hs.process.pid;
  assert.equal((await hs.get('/health')).status, 200);
  await lab.cleanup();
  assert.ok(pidGone(pid), 'headscale still running after lab cleanup');
  for (let i = 0; i < 50 && existsSync(hs.dir); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!existsSync(hs.dir), 'temp dir left behind');
});
