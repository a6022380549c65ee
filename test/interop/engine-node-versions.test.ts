// The engine on Electron's Node, not only on Node 20 (DESIGN: "everything else runs under plain Node 20+ and under
// Electron's Node alike"). Electron 45 ships Node 24 and its binary cannot be had here, so the npm registry's Node 24
// stands in (test/setup/engine-node-versions.txt; prereqs.sh installs it). Under it: the AEAD known-answer tests and
// the native addon's tests (ours is built against Node 20's headers, Node-API 8, which is ABI-stable; sodium-native
// is Node-API too), then one lab with a real Headscale and a tailscaled peer, and two `trellis daemon`s with a TUN:
// one from the sources (tsx), one from the app's esbuild bundle laid out as a package holds it. Each must carry
// ping, HTTP and Taildrop both ways with tailscaled. Missing Node 24 fails under CI=true and is skipped elsewhere.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempIsolatedEnv } from '../isolated-env.ts';
import { buildAppBundle, requireEngineNode } from './lab/engine-node.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, pingFrom, startTrellisNode, type TrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAJOR = 24; // Electron 45's Node
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The unit tests that touch what differs between Node versions: native code (addon, libsodium) and crypto. */
const UNIT_FILES = [
  'test/unit/aead.test.ts',
  'test/unit/wg-crypto.test.ts',
  'test/unit/wg-noise-vector.test.ts',
  'test/unit/native-tun.test.ts',
  'test/unit/udp-gro.test.ts',
];

test(`engine unit tests on Node ${MAJOR}: AEAD vectors, libsodium and the native addon`, {
  timeout: 300_000,
}, async (t) => {
  if (!requireTools(t, ['ip'])) return; // root: the TUN tests must run, not skip
  const node = requireEngineNode(t, MAJOR);
  if (!node) return;
  const home = tempIsolatedEnv();
  t.after(home.remove);
  // A child of the test runner inherits NODE_TEST_CONTEXT, which would make the inner runner report in the outer
  // one's binary protocol instead of TAP.
  const env: NodeJS.ProcessEnv = { ...process.env, ...home.env };
  delete env.NODE_TEST_CONTEXT;
  const args = ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=tap', ...UNIT_FILES];
  const r = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(node.bin, args, { cwd: ROOT, env, timeout: 280_000, maxBuffer: 64 << 20 }, (e, stdout, stderr) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out: `${stdout}${stderr}` }),
    );
  });
  const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(r.out)?.[1] ?? Number.NaN);
  t.diagnostic(`node ${node.version}: pass ${count('pass')}, fail ${count('fail')}, skipped ${count('skipped')}`);
  assert.equal(r.code, 0, r.out.slice(-8_000));
  assert.equal(count('fail'), 0, r.out.slice(-8_000));
  assert.equal(count('skipped'), 0, `nothing may skip here (root, /dev/net/tun):\n${r.out.slice(-8_000)}`);
  assert.ok(count('pass') >= UNIT_FILES.length * 2, `too few tests ran:\n${r.out.slice(-4_000)}`);
});

test(`trellis daemon on Node ${MAJOR}, from the sources and from the app bundle, with tailscaled`, {
  timeout: 300_000,
}, async (t) => {
  if (!ready(t)) return;
  const node = requireEngineNode(t, MAJOR);
  if (!node) return;
  await withLab(t, async (lab) => {
    const [bundle, tn] = await Promise.all([buildAppBundle(), buildTailnetLab(lab, ['ts', 'src', 'bun'])]);
    t.after(() => rm(bundle.app, { recursive: true, force: true }));
    const [hTs, hSrc, hBun] = [tn.hosts.ts, tn.hosts.src, tn.hosts.bun];
    if (!hTs || !hSrc || !hBun) throw new Error('tailnet lab without hosts ts, src, bun');
    const hs = tn.headscale;
    const login = { loginServer: hs.url, authKey: tn.authKey, node: node.bin };
    const startTs = async () => {
      const ts = await startTailscaled(hTs, { name: 'ts', env: TS_ENV });
      await ts.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-peer' });
      return ts;
    };
    const [ts, src, bun] = await Promise.all([
      startTs(),
      startTrellisNode(hSrc, { ...login, hostname: 'node24-src' }),
      startTrellisNode(hBun, { ...login, hostname: 'node24-bundle', trellisBin: bundle.trellisJs }),
    ]);
    const nodes: Array<[string, TrellisNode]> = [
      ['sources', src],
      ['bundle', bun],
    ];
    const ipTs = (await ts.ip()).v4;
    const ips = new Map<TrellisNode, string>();
    for (const [, n] of nodes) ips.set(n, (await n.ip()).v4);
    const work = await mkdtemp(path.join(tmpdir(), 'trellis-node24-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    const { claim, report } = claims(t, async () => lab.diagnostics());

    await claim(`1. both daemons run on Node ${node.version} with libsodium and see tailscaled`, async (st) => {
      for (const [what, n] of nodes) {
        // `ip netns exec` execs the command: the daemon's pid is the node process itself
        const exe = await readlink(`/proc/${n.process.child.pid}/exe`);
        assert.equal(exe, node.bin, `${what}: the daemon runs ${exe}`);
        const s = await n.waitFor(
          (x) => x.state === 'Running' && x.peers.some((p) => p.addresses.includes(ipTs)),
          30_000,
        );
        assert.equal(s.state, 'Running', `${what}: ${JSON.stringify(s)}`);
        assert.ok(
          s.peers.some((p) => p.addresses.includes(ipTs)),
          `${what} lists ts-peer: ${JSON.stringify(s.peers)}`,
        );
        assert.equal(s.crypto?.aead, 'libsodium', `${what}: ${JSON.stringify(s.crypto)}`);
        st.diagnostic(`${what}: ${exe}, ${ips.get(n)}, aead ${s.crypto?.aead}`);
      }
      assert.match(bundle.log, /receive-worker\.js/, bundle.log);
    });

    await claim('2. ping both ways between each daemon and tailscaled', async (st) => {
      const probes = nodes.flatMap(([what, n]) => [
        { what: `${what} → ts`, ns: n.ns, to: ipTs },
        { what: `ts → ${what}`, ns: hTs, to: ips.get(n) ?? '' },
      ]);
      const res = await Promise.all(
        probes.map(async (p) => ({ ...p, ok: await pingFrom(p.ns, p.to, { deadlineS: 20 }) })),
      );
      for (const p of res) st.diagnostic(`ping ${p.what} (${p.to}): ${p.ok ? 'ok' : 'FAILED'}`);
      assert.deepEqual(
        res.filter((p) => !p.ok).map((p) => p.what),
        [],
      );
    });

    await claim('3. HTTP both ways: curl through the tunnel, body sha256 intact', async (st) => {
      // A static file server on every host (the test's own Node: it is the peer's app, not the engine).
      const body = randomBytes(256 << 10);
      const file = path.join(work, 'page.bin');
      await writeFile(file, body);
      const serve = `require('http').createServer((q,s)=>s.end(require('fs').readFileSync(${JSON.stringify(file)}))).listen(8080,'0.0.0.0')`;
      for (const h of [hTs, hSrc, hBun]) h.spawn([process.execPath, '-e', serve], { label: `http@${h.short}` });
      const gets = nodes.flatMap(([what, n]) => [
        { what: `${what} → ts`, ns: n.ns, url: `http://${ipTs}:8080/` },
        { what: `ts → ${what}`, ns: hTs, url: `http://${ips.get(n)}:8080/` },
      ]);
      const bad: string[] = [];
      for (const g of gets) {
        const out = path.join(work, `got-${bad.length}-${Math.random().toString(36).slice(2)}`);
        const r = await g.ns.run(
          [
            'curl',
            '-sS',
            '--fail',
            '--retry',
            '10',
            '--retry-connrefused',
            '--retry-delay',
            '1',
            '--max-time',
            '30',
            '-o',
            out,
            g.url,
          ],
          { timeoutMs: 60_000 },
        );
        const ok = r.code === 0 && sha(await readFile(out)) === sha(body);
        st.diagnostic(`GET ${g.what} ${g.url}: ${ok ? 'ok' : `FAILED ${r.stderr.trim()}`}`);
        if (!ok) bad.push(g.what);
      }
      assert.deepEqual(bad, []);
    });

    await claim(
      '4. Taildrop both ways: trellis file cp → tailscale file get, tailscale file cp → trellis file get',
      async (st) => {
        const files = new Map<string, Buffer>();
        for (const [what, n] of nodes) {
          await waitUntil(`${what} lists ts-peer as a file target`, 20_000, async () =>
            ((await n.status()).fileTargets ?? []).some((x) => x.startsWith('ts-peer')) ? true : null,
          );
          const name = `from-${what}.bin`;
          files.set(name, randomBytes(512 << 10));
          await writeFile(path.join(work, name), files.get(name) ?? '');
          const r = await n.cli(['file', 'cp', path.join(work, name), 'ts-peer:'], 60_000);
          st.diagnostic(`${what} → ts: ${r.stdout.trim() || r.stderr.trim()}`);
          assert.equal(r.code, 0, `${what}: trellis file cp: ${r.stderr}${r.stdout}\n${n.output().slice(-3_000)}`);
        }
        const tsInbox = path.join(work, 'ts-got');
        await mkdir(tsInbox);
        const g = await ts.cli(['file', 'get', tsInbox], 30_000);
        assert.equal(g.code, 0, `tailscale file get: ${g.stderr}`);
        for (const [name, b] of files) assert.equal(sha(await readFile(path.join(tsInbox, name))), sha(b), name);

        for (const [what, n] of nodes) {
          const name = `to-${what}.bin`;
          const data = randomBytes(512 << 10);
          await writeFile(path.join(work, name), data);
          const ip = ips.get(n) ?? '';
          const r = await waitUntil(`tailscale file cp to ${what}`, 30_000, async () => {
            const x = await ts.cli(['file', 'cp', path.join(work, name), `${ip}:`], 30_000);
            if (x.code !== 0) throw new Error(`${x.stderr}${x.stdout}`);
            return x;
          }).catch((e: Error) => assert.fail(`${e.message}\n--- ${what} daemon:\n${n.output().slice(-3_000)}`));
          st.diagnostic(`ts → ${what}: ${r.stdout.trim() || 'sent'}`);
          const out = path.join(work, `${what}-got`);
          const got = await n.cli(['file', 'get', out], 30_000);
          assert.equal(got.code, 0, `${what}: trellis file get: ${got.stderr}`);
          assert.equal(sha(await readFile(path.join(out, name))), sha(data), `${what} received ${name}`);
        }
        // Both Taildrop sides ran in threads of their own: without its worker file, a side runs on the engine's thread
        // and says so in the daemon's log.
        for (const [what, n] of nodes)
          assert.doesNotMatch(
            n.output(),
            /receive thread (ended|failed)|no (send|receive) thread/,
            `${what}: a Taildrop thread did not run`,
          );
      },
    );

    await report();
  });
});
