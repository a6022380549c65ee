// `trellis wg` as a user meets it when something is wrong: a bad file, no privilege, a busy port,
// nothing running. Each must fail fast with a clear message and a non-zero exit.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { withLab } from './lab/netns.ts';
import { runCommand } from './lab/proc.ts';
import { requireTools } from './lab/tools.ts';
import { renderWgQuick, TRELLIS_BIN } from './lab/trellis.ts';
import { genKey, pubKey } from './lab/wggo.ts';

async function tempConf(name: string, text: string): Promise<{ file: string; dir: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-cli-'));
  const file = path.join(dir, name);
  await writeFile(file, text, { mode: 0o600 });
  return { file, dir };
}

test('a bad config file names the line and the reason, and exits 1', async () => {
  const key = await genKey();
  const { file, dir } = await tempConf('bad0.conf', `[Interface]\nPrivateKey = ${key}\nListenPort = seventy\n`);
  try {
    const r = await runCommand('node', [TRELLIS_BIN, 'wg', 'up', file], { timeoutMs: 20_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad0\.conf: line 3: ListenPort must be a number/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('without privilege, wg up explains that a TUN device needs root or CAP_NET_ADMIN', async (t) => {
  if (!requireTools(t, ['setpriv'])) return;
  const key = await genKey();
  const { file, dir } = await tempConf(
    'priv0.conf',
    renderWgQuick({ name: 'priv0', privateKey: key, addresses: ['203.0.113.1/24'], peers: [] }),
  );
  try {
    // Still root (so the files stay readable wherever the checkout is), but without CAP_NET_ADMIN.
    const r = await runCommand(
      'setpriv',
      ['--bounding-set=-net_admin', '--inh-caps=-net_admin', 'node', TRELLIS_BIN, 'wg', 'up', file],
      { timeoutMs: 20_000, env: { TRELLIS_RUN_DIR: path.join(dir, 'run') } },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /needs root or CAP_NET_ADMIN/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a busy UDP port is reported as such, and the interface is not left behind', async (t) => {
  if (!requireTools(t, ['ip'])) return;
  await withLab(t, async (lab) => {
    const ns = await lab.addNamespace('p');
    const holder = ns.spawn([
      'node',
      '-e',
      "require('dgram').createSocket('udp4').bind(51999, () => console.log('bound'))",
    ]);
    assert.ok(await holder.waitForOutput(/bound/, 10_000));
    const key = await genKey();
    const conf = renderWgQuick({
      name: 'busy0',
      privateKey: key,
      listenPort: 51999,
      addresses: ['203.0.113.1/24'],
      peers: [{ publicKey: await pubKey(await genKey()), allowedIPs: ['203.0.113.2/32'] }],
    });
    const { file, dir } = await tempConf('busy0.conf', conf);
    try {
      const r = await ns.run(['node', TRELLIS_BIN, 'wg', 'up', file], {
        timeoutMs: 20_000,
        env: { TRELLIS_RUN_DIR: path.join(dir, 'run') },
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /UDP port 51999 is already in use/);
      const links = await ns.exec(['ip', '-o', 'link', 'show']);
      assert.doesNotMatch(links, /busy0/, 'the TUN device was closed again');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('wg show with nothing running says so', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-cli-'));
  try {
    const env = { TRELLIS_RUN_DIR: dir };
    const r = await runCommand('node', [TRELLIS_BIN, 'wg', 'show'], { timeoutMs: 20_000, env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no WireGuard interfaces are running/);
    const named = await runCommand('node', [TRELLIS_BIN, 'wg', 'show', 'nope0'], { timeoutMs: 20_000, env });
    assert.equal(named.code, 1);
    assert.match(named.stderr, /no running trellis interface named nope0/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
