// Taildrop with the official tailscaled (docs/protocol/services.md §2): Trellis node a and tailscaled b of the same Headscale
// user on one LAN, tailscaled c of another user. Files go both ways with equal sha256 (empty, 1 KiB, 100 MiB);
// hostile names are refused by Trellis's PeerAPI with 400 and nothing written; the other user gets 403.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Namespace } from './lab/netns.ts';
import { withLab } from './lab/netns.ts';
import { claims, peerApiOf, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const HOSTILE_NAMES = [
  '..',
  '.',
  '../escape.txt',
  'a/b.txt',
  'a\\b.txt',
  '/abs.txt',
  'nul\0byte.txt',
  'bell\x07.txt',
  'tab\tname.txt',
  'CON',
  'com1.txt',
  ' leading.txt',
  'trailing.txt ',
  'x.partial',
  'colon:name.txt',
  `${'x'.repeat(252)}.txt`,
];

/** PUT /v0/put/<name> from ns to the PeerAPI at base (a small node client): the status code. */
async function rawPut(ns: Namespace, base: string, name: string, body: string): Promise<number> {
  // The path goes out as given (no URL object): a URL parser would resolve "/v0/put/.." before it is sent.
  const js =
    "const [u,p,b]=process.argv.slice(1);const x=new URL(u);const r=require('http').request({host:x.hostname," +
    "port:x.port,path:p,method:'PUT',headers:{host:'peer','content-length':Buffer.byteLength(b)}},(res)=>" +
    "{console.log(res.statusCode);res.resume()});r.on('error',(e)=>{console.log('error '+e.code);});r.end(b)";
  const out = await ns.exec([process.execPath, '-e', js, base, `/v0/put/${encodeURIComponent(name)}`, body], {
    timeoutMs: 15_000,
  });
  return Number(out.trim()) || 0;
}

test('Taildrop: Trellis ↔ tailscaled both ways, hostile names refused, other users refused', {
  timeout: 240_000,
}, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b', 'c']);
    const [ha, hb, hc] = [tn.hosts.a, tn.hosts.b, tn.hosts.c];
    if (!ha || !hb || !hc) throw new Error('tailnet lab without hosts a, b, c');
    const hs = tn.headscale;
    const otherKey = await hs.createAuthKey(await hs.createUser('other'), { reusable: true, expiration: '1h' });
    const tr = await startTrellisNode(ha, { hostname: 'trellis-a', loginServer: hs.url, authKey: tn.authKey });
    const tsB = await startTailscaled(hb, { name: 'b', env: TS_ENV });
    await tsB.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-b' });
    const tsC = await startTailscaled(hc, { name: 'c', env: TS_ENV });
    await tsC.up({ loginServer: hs.url, authKey: otherKey, hostname: 'ts-c' });
    const ipA = (await tr.ip()).v4;
    const work = await mkdtemp(path.join(tmpdir(), 'trellis-taildrop-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    const files = { 'empty.bin': new Uint8Array(0), 'one-k.txt': randomBytes(1024), 'big.bin': randomBytes(100 << 20) };
    for (const [n, b] of Object.entries(files)) await writeFile(path.join(work, n), b);
    const { claim, report } = claims(t, async () => lab.diagnostics());

    await claim('1. each side lists the other as a file target; the other user is not one', async (st) => {
      const s = await tr.waitFor((x) => (x.fileTargets ?? []).length > 0, 15_000);
      st.diagnostic(`trellis file targets: ${JSON.stringify(s.fileTargets)}`);
      assert.deepEqual(s.fileTargets, ['ts-b.tailnet.test']);
      const targets = await waitUntil('tailscale file cp --targets lists trellis-a', 20_000, async () => {
        const r = await tsB.cli(['file', 'cp', '--targets'], 10_000);
        return r.stdout.includes('trellis-a') ? r.stdout : null;
      });
      st.diagnostic(`tailscale file cp --targets: ${targets.trim()}`);
    });
    await claim('2. trellis file cp → tailscale file get: empty, 1 KiB and 100 MiB, sha256 equal', async (st) => {
      for (const n of Object.keys(files)) {
        const t0 = Date.now();
        const r = await tr.cli(['file', 'cp', path.join(work, n), 'ts-b:'], 120_000);
        assert.equal(r.code, 0, `trellis file cp ${n}: ${r.stderr}${r.stdout}`);
        st.diagnostic(`${n}: ${r.stdout.trim()} in ${Date.now() - t0} ms`);
      }
      const inbox = path.join(work, 'b-got');
      await mkdir(inbox);
      const g = await tsB.cli(['file', 'get', inbox], 30_000);
      assert.equal(g.code, 0, `tailscale file get: ${g.stderr}`);
      for (const [n, b] of Object.entries(files)) {
        assert.equal(sha(await readFile(path.join(inbox, n))), sha(b), `${n} as tailscaled received it`);
      }
    });
    await claim('3. tailscale file cp → Trellis inbox → trellis file get: sha256 equal', async (st) => {
      for (const n of ['one-k.txt', 'big.bin']) {
        const r = await tsB.cli(['file', 'cp', path.join(work, n), `${ipA}:`], 120_000);
        assert.equal(r.code, 0, `tailscale file cp ${n}: ${r.stderr}${r.stdout}`);
      }
      const out = path.join(work, 'a-got');
      const g = await tr.cli(['file', 'get', out], 30_000);
      assert.equal(g.code, 0, `trellis file get: ${g.stderr}`);
      st.diagnostic(`trellis file get: ${g.stdout.trim().replaceAll('\n', ', ')}`);
      for (const n of ['one-k.txt', 'big.bin']) {
        assert.equal(sha(await readFile(path.join(out, n))), sha(files[n as keyof typeof files]), n);
      }
    });
    await claim('4. hostile names: 400 from Trellis, nothing written', async (st) => {
      const base = await peerApiOf(tsB, ipA);
      const inboxDir = path.join(tr.stateDir, 'taildrop');
      const before = await readdir(inboxDir);
      const bad: string[] = [];
      for (const name of HOSTILE_NAMES) {
        const status = await rawPut(hb, base, name, 'payload');
        if (status !== 400) bad.push(`${JSON.stringify(name)} → ${status}`);
      }
      assert.deepEqual(await readdir(inboxDir), before, 'the inbox changed');
      st.diagnostic(`${HOSTILE_NAMES.length} hostile names refused; inbox still ${JSON.stringify(before)}`);
      assert.deepEqual(bad, [], `not refused with 400: ${bad.join(', ')}`);
      assert.equal(await rawPut(hb, base, 'fine.txt', 'ok'), 200, 'a good name from the same user is accepted');
    });
    await claim('5. a node of another user gets 403 and writes nothing', async () => {
      const base = await peerApiOf(tsC, ipA).catch(() => peerApiOf(tsB, ipA));
      const inboxDir = path.join(tr.stateDir, 'taildrop');
      const before = await readdir(inboxDir);
      assert.equal(await rawPut(hc, base, 'from-other.txt', 'nope'), 403);
      assert.deepEqual(await readdir(inboxDir), before);
    });
    await claim(
      '6. the link cut mid-transfer and restored: the resend resumes and the file arrives intact',
      async (st) => {
        const data = randomBytes(60 << 20);
        const file = path.join(work, 'resume.bin');
        await writeFile(file, data);
        const dev = /dev (\S+)/.exec(await ha.exec(['ip', 'route', 'get', '203.0.113.1']))?.[1];
        if (!dev) throw new Error('no uplink device in namespace a');
        // slow enough (40 Mbit/s) that the cut lands mid-transfer
        await ha.exec([
          'tc',
          'qdisc',
          'add',
          'dev',
          dev,
          'root',
          'tbf',
          'rate',
          '40mbit',
          'burst',
          '64kb',
          'latency',
          '400ms',
        ]);
        const first = tr.cli(['file', 'cp', file, 'ts-b:'], 120_000);
        await new Promise((r) => setTimeout(r, 4_000));
        await ha.exec(['ip', 'link', 'set', dev, 'down']);
        const failed = await first;
        st.diagnostic(`first attempt: exit ${failed.code}: ${failed.stderr.trim() || failed.stdout.trim()}`);
        assert.notEqual(failed.code, 0, 'the first attempt must fail while the link is down');
        await ha.exec(['ip', 'link', 'set', dev, 'up']);
        await ha.exec(['tc', 'qdisc', 'del', 'dev', dev, 'root']);
        await ha.exec(['ip', 'route', 'replace', 'default', 'dev', dev]).catch(() => '');
        let again = await tr.cli(['file', 'cp', file, 'ts-b:'], 120_000);
        // tailscaled may still hold the cut upload until the FIN of the dead connection reaches it: it answers 409,
        // or resets the connection while our body is still going out (the engine retries twice, then says so)
        const busy = /409|ECONNRESET|EPIPE|kept resetting|did not answer/;
        for (let i = 0; i < 25 && again.code !== 0 && busy.test(again.stderr); i++) {
          await new Promise((r) => setTimeout(r, 2_000));
          again = await tr.cli(['file', 'cp', file, 'ts-b:'], 120_000);
        }
        st.diagnostic(`second attempt: ${again.stdout.trim() || again.stderr.trim()}`);
        assert.equal(again.code, 0, again.stderr);
        const resumed = Number(/resumed after (\d+) bytes/.exec(again.stdout)?.[1] ?? 0);
        assert.ok(resumed > 0 && resumed < data.length, `the resend skipped ${resumed} bytes`);
        const inbox = path.join(work, 'b-resume');
        await mkdir(inbox);
        assert.equal((await tsB.cli(['file', 'get', inbox], 30_000)).code, 0);
        assert.equal(sha(await readFile(path.join(inbox, 'resume.bin'))), sha(data));
      },
    );
    await report();
  });
});
