// Proves the interop lab itself: namespaces + veth, two wireguard-go peers (with a preshared key) carrying IPv4 and
// IPv6 both ways, a hashed TCP transfer, handshake reporting, restart, and cleanup that leaves nothing behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { execCommand, LAB_PREFIX, Lab, listNamespaces, withLab, withTimeout } from '../interop/lab/netns.ts';
import { requireTools } from '../interop/lab/tools.ts';
import { ping, tcpTransfer, waitPing } from '../interop/lab/traffic.ts';
import { genKey, genPsk, parseWgDump, pubKey, renderWgConf, startWireguardGo } from '../interop/lab/wggo.ts';

const TOOLS = ['ip', 'ping', 'wg', 'wireguard-go'];

async function assertGone(prefix: string): Promise<void> {
  const left = (await listNamespaces()).filter((n) => n.startsWith(prefix));
  assert.deepEqual(left, [], `namespaces left behind: ${left.join(' ')}`);
}

test('wg dump parsing and config rendering', () => {
  const dump =
    'cHJpdg==\tcHVi\t51820\toff\n' +
    'cGVlcg==\t(none)\t192.0.2.2:51820\t203.0.113.2/32,2001:db8:100::2/128\t1700000000\t1234\t5678\toff\n' +
    'cGVlcjI=\tcHNr\t(none)\t(none)\t0\t0\t0\t25\n';
  const s = parseWgDump(dump);
  assert.equal(s.listenPort, 51820);
  assert.equal(s.peers.length, 2);
  assert.deepEqual(s.peers[0], {
    publicKey: 'cGVlcg==',
    hasPresharedKey: false,
    endpoint: '192.0.2.2:51820',
    allowedIPs: ['203.0.113.2/32', '2001:db8:100::2/128'],
    latestHandshake: 1700000000,
    rx: 1234,
    tx: 5678,
    persistentKeepalive: null,
  });
  assert.equal(s.peers[1]?.endpoint, null);
  assert.equal(s.peers[1]?.hasPresharedKey, true);
  assert.equal(s.peers[1]?.persistentKeepalive, 25);
  const conf = renderWgConf({
    privateKey: 'k',
    listenPort: 1,
    peers: [
      {
        publicKey: 'p',
        presharedKey: 's',
        allowedIPs: ['a', 'b'],
        endpoint: '[2001:db8:1::2]:1',
        persistentKeepalive: 5,
      },
    ],
  });
  assert.match(conf, /AllowedIPs = a, b\n/);
  assert.match(conf, /Endpoint = \[2001:db8:1::2\]:1\n/);
});

test('lab: veth ping between two namespaces', { timeout: 30_000 }, async (t) => {
  if (!requireTools(t, TOOLS)) return;
  let prefix = '';
  await withLab(t, async (lab) => {
    prefix = lab.prefix;
    const a = await lab.addNamespace('a');
    const b = await lab.addNamespace('b');
    await lab.linkVeth(a, b, { a: '192.0.2.1/24', b: '192.0.2.2/24', a6: '2001:db8:1::1/64', b6: '2001:db8:1::2/64' });
    assert.ok(await ping(a, '192.0.2.2'), 'v4 a->b');
    assert.ok(await ping(b, '192.0.2.1'), 'v4 b->a');
    assert.ok(await waitPing(a, '2001:db8:1::2', 5_000), 'v6 a->b');
    assert.ok(await ping(b, '[2001:db8:1::1]'), 'v6 b->a (bracketed)');
    assert.equal(await ping(a, '192.0.2.99', { count: 1, timeoutS: 1 }), false, 'no reply from an unused address');
    assert.equal((await listNamespaces()).filter((n) => n.startsWith(prefix)).length, 2);
  });
  await assertGone(prefix);
});

test('lab: two wireguard-go peers with PSK carry IPv4, IPv6 and a 5 MB transfer', { timeout: 60_000 }, async (t) => {
  if (!requireTools(t, TOOLS)) return;
  let prefix = '';
  let ifnames: string[] = [];
  await withLab(t, async (lab) => {
    prefix = lab.prefix;
    const a = await lab.addNamespace('a');
    const b = await lab.addNamespace('b');
    await lab.linkVeth(a, b, { a: '192.0.2.1/24', b: '192.0.2.2/24' });

    const [keyA, keyB, psk] = await Promise.all([genKey(), genKey(), genPsk()]);
    const [pubA, pubB] = await Promise.all([pubKey(keyA), pubKey(keyB)]);
    const wgA = await startWireguardGo(a, {
      privateKey: keyA,
      listenPort: 51820,
      address4: '203.0.113.1/24',
      address6: '2001:db8:100::1/64',
      mtu: 1420,
      peers: [
        {
          publicKey: pubB,
          presharedKey: psk,
          allowedIPs: ['203.0.113.2/32', '2001:db8:100::2/128'],
          endpoint: '192.0.2.2:51821',
        },
      ],
    });
    const wgB = await startWireguardGo(b, {
      privateKey: keyB,
      listenPort: 51821,
      address4: '203.0.113.2/24',
      address6: '2001:db8:100::2/64',
      mtu: 1420,
      peers: [
        {
          publicKey: pubA,
          presharedKey: psk,
          allowedIPs: ['203.0.113.1/32', '2001:db8:100::1/128'],
          endpoint: '192.0.2.1:51820',
        },
      ],
    });
    ifnames = [wgA.ifname, wgB.ifname];
    assert.equal(wgA.publicKey, pubA);

    const before = await wgA.show();
    assert.equal(before.peers[0]?.latestHandshake, 0, 'no handshake before traffic');

    assert.ok(await waitPing(a, '203.0.113.2', 10_000), 'tunnel v4 a->b');
    assert.ok(await ping(b, '203.0.113.1'), 'tunnel v4 b->a');
    assert.ok(await waitPing(a, '2001:db8:100::2', 5_000), 'tunnel v6 a->b');
    assert.ok(await ping(b, '2001:db8:100::1'), 'tunnel v6 b->a');

    const xfer = await tcpTransfer({
      fromNs: a,
      toNs: b,
      toAddr: '203.0.113.2',
      port: 5001,
      bytes: 5_000_000,
      seed: 42,
    });
    assert.equal(xfer.receivedBytes, 5_000_000);
    assert.equal(xfer.receivedSha256, xfer.sentSha256);
    const xfer6 = await tcpTransfer({
      fromNs: b,
      toNs: a,
      toAddr: '2001:db8:100::1',
      port: 5002,
      bytes: 1_000_000,
      seed: 7,
    });
    assert.equal(xfer6.receivedSha256, xfer6.sentSha256);
    t.diagnostic(`5 MB over wireguard-go in ${xfer.seconds.toFixed(3)} s`);

    const shownA = await wgA.show();
    const peerB = shownA.peers[0];
    assert.ok(peerB, 'a has a peer');
    assert.equal(peerB.publicKey, pubB);
    assert.equal(peerB.hasPresharedKey, true);
    assert.equal(peerB.endpoint, '192.0.2.2:51821');
    assert.ok(peerB.latestHandshake > 0, 'handshake recorded');
    assert.ok(peerB.tx > 5_000_000, `tx counted (${peerB.tx})`);
    assert.ok(((await wgB.show()).peers[0]?.rx ?? 0) > 5_000_000, 'rx counted on b');

    await wgB.restart();
    assert.equal((await wgB.show()).peers[0]?.latestHandshake, 0, 'fresh state after restart');
    assert.ok(await waitPing(b, '203.0.113.1', 10_000), 'tunnel works again after restart');
  });
  await assertGone(prefix);
  for (const ifname of ifnames)
    assert.ok(!existsSync(`/var/run/wireguard/${ifname}.sock`), `socket of ${ifname} removed`);
});

test('lab: removeStale removes leftovers of a dead run and leaves live labs alone', { timeout: 20_000 }, async (t) => {
  if (!requireTools(t, ['ip', 'sleep'])) return;
  // A pid that has just exited stands in for a crashed run.
  const dead = spawn('true');
  await new Promise((r) => dead.on('exit', r));
  const stalePrefix = `${LAB_PREFIX}${dead.pid}a`;
  const staleNs = `${stalePrefix}-z`;
  const staleSock = `/var/run/wireguard/${stalePrefix}w0.sock`;
  const lab = new Lab();
  t.after(async () => {
    await lab.cleanup();
    await Lab.removeStale();
  });
  try {
    await lab.addNamespace('x');
    await execCommand('ip', ['netns', 'add', staleNs]);
    const orphan = spawn('ip', ['netns', 'exec', staleNs, 'sleep', '30'], { stdio: 'ignore' });
    const orphanExit = new Promise((r) => orphan.on('exit', r));
    await mkdir('/var/run/wireguard', { recursive: true });
    await writeFile(staleSock, '');
    const hadEtcNetns = existsSync('/etc/netns');
    t.after(() => (hadEtcNetns ? undefined : rmdir('/etc/netns').catch(() => {})));
    await mkdir(`/etc/netns/${staleNs}`, { recursive: true });

    const removed = await Lab.removeStale();
    assert.ok(!removed.some((n) => n.startsWith(lab.prefix)), 'own namespace not reported as stale');
    assert.ok(removed.includes(staleNs), 'stale namespace removed');
    assert.ok(!(await listNamespaces()).includes(staleNs));
    assert.ok((await listNamespaces()).includes(`${lab.prefix}-x`), 'live namespace kept');
    assert.ok(!existsSync(staleSock), 'stale wireguard socket removed');
    assert.ok(!existsSync(`/etc/netns/${staleNs}`), 'stale /etc/netns dir removed');
    assert.notEqual(await withTimeout(orphanExit, 3_000), 'timeout', 'process left in the stale namespace killed');
  } finally {
    await lab.cleanup();
  }
  await assertGone(lab.prefix);
});
