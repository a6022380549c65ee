// The daemon's socket group are operators, not root (issue 12): a root daemon started with --socket-group, a
// tailscaled peer of the same user, and `trellis` run as uid 65534 — in the group and outside it. A group member
// sends and saves files only as far as its own rights go; the old request shapes that named paths are refused; root
// still sends and receives; a local user outside the group can neither drive the daemon nor upload to the node's
// own PeerAPI.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Namespace } from './lab/netns.ts';
import { withLab } from './lab/netns.ts';
import type { RunResult } from './lab/proc.ts';
import { claims, peerApiOf, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode, type TrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';

const NOBODY = 65534;
const OPERATORS = 4242; // a gid no account uses: --socket-group takes a number as is
const RUN_AS = fileURLToPath(new URL('./lab/run-as.mjs', import.meta.url));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** `trellis <args>` in the node's namespace as uid 65534, in the operators' group or not. */
function asNobody(node: TrellisNode, args: string[], inGroup: boolean, timeoutMs = 60_000): Promise<RunResult> {
  const ids = `${NOBODY}:${NOBODY}:${inGroup ? OPERATORS : ''}`;
  return node.ns.run([process.execPath, RUN_AS, ids, ...args, '--socket', node.socket], { timeoutMs });
}

/** One raw line over the daemon's socket as uid 65534 in the group: the reply line, or the connect error. */
async function rawRequest(node: TrellisNode, request: object): Promise<string> {
  const js =
    "const s=require('net').connect(process.argv[1]);let b='';s.on('data',d=>{b+=d;const i=b.indexOf('\\n');" +
    "if(i>=0){console.log(b.slice(0,i));process.exit(0)}});s.on('error',e=>{console.log('error '+e.code);" +
    "process.exit(0)});s.write(process.argv[2]+'\\n');setTimeout(()=>{console.log('no answer');process.exit(0)},10000)";
  const setpriv = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, `--groups=${OPERATORS}`];
  const r = await node.ns.run([...setpriv, process.execPath, '-e', js, node.socket, JSON.stringify(request)], {
    timeoutMs: 20_000,
  });
  return r.stdout.trim();
}

/** PUT from ns as uid 65534 with no extra group: the HTTP status, or the socket error. */
async function putAsNobody(ns: Namespace, url: string, body: string): Promise<string> {
  const js =
    "const [u,b]=process.argv.slice(1);const r=require('http').request(u,{method:'PUT',headers:{host:'peer'," +
    "'content-length':Buffer.byteLength(b)}},(res)=>{console.log(res.statusCode);res.resume()});" +
    "r.on('error',(e)=>console.log('error '+e.code));r.setTimeout(10000,()=>r.destroy());r.end(b)";
  const setpriv = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
  return (await ns.run([...setpriv, process.execPath, '-e', js, url, body], { timeoutMs: 20_000 })).stdout.trim();
}

test('socket-group operators: no root file read, no write outside their rights, old shapes refused', {
  timeout: 300_000,
}, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b']);
    const [ha, hb] = [tn.hosts.a, tn.hosts.b];
    if (!ha || !hb) throw new Error('tailnet lab without hosts a, b');
    const tr = await startTrellisNode(ha, {
      hostname: 'trellis-a',
      loginServer: tn.headscale.url,
      authKey: tn.authKey,
      socketGroup: OPERATORS,
    });
    const tsB = await startTailscaled(hb, { name: 'b', env: TS_ENV });
    await tsB.up({ loginServer: tn.headscale.url, authKey: tn.authKey, hostname: 'ts-b' });
    const ipA = (await tr.ip()).v4;
    await tr.waitFor((s) => (s.fileTargets ?? []).length > 0, 20_000);

    const work = await mkdtemp(path.join(tmpdir(), 'trellis-operators-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    await chmod(work, 0o755);
    const rootOnly = path.join(work, 'root-only'); // 0700 root: a group member may neither read nor write here
    await mkdir(rootOnly, { mode: 0o700 });
    const secret = randomBytes(4096);
    await writeFile(path.join(rootOnly, 'secret.bin'), secret, { mode: 0o600 });
    const shared = randomBytes(100_000);
    await writeFile(path.join(work, 'shared.bin'), shared, { mode: 0o644 });
    const nobodyDir = path.join(work, 'nobody'); // the group member's own folder
    await mkdir(nobodyDir, { mode: 0o700 });
    await chown(nobodyDir, NOBODY, NOBODY);
    const inbox = path.join(tr.stateDir, 'taildrop');
    /** What tailscaled b received, moved into a fresh folder. */
    const bReceived = async (): Promise<string[]> => {
      const into = await mkdtemp(path.join(work, 'b-got-'));
      await tsB.cli(['file', 'get', into], 30_000);
      return readdir(into).then((names) => names.map((n) => path.join(into, n)));
    };
    const { claim, report } = claims(t, async () => lab.diagnostics());

    await claim('1. a group member sending a root-only file: permission denied, the peer gets nothing', async (st) => {
      const r = await asNobody(tr, ['file', 'cp', path.join(rootOnly, 'secret.bin'), 'ts-b:'], true);
      st.diagnostic(`exit ${r.code}: ${r.stderr.trim()}`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /permission denied/);
      assert.deepEqual(await bReceived(), [], 'tailscaled received nothing');
    });
    await claim('2. a group member sends a file it may read; the peer gets its bytes', async () => {
      const r = await asNobody(tr, ['file', 'cp', path.join(work, 'shared.bin'), 'ts-b:'], true);
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      const got = await bReceived();
      assert.equal(got.length, 1);
      assert.equal(sha(await readFile(got[0] as string)), sha(shared));
    });
    await claim(
      '3. taking received files into a root-only folder fails; nothing is created; nothing lost',
      async (st) => {
        const incoming = path.join(work, 'incoming.bin');
        const bytes = randomBytes(200_000);
        await writeFile(incoming, bytes);
        const cp = await tsB.cli(['file', 'cp', incoming, `${ipA}:`], 60_000);
        assert.equal(cp.code, 0, `tailscale file cp: ${cp.stderr}`);
        await waitUntil('the file in the inbox', 15_000, async () =>
          (await readdir(inbox)).includes('incoming.bin') ? true : null,
        );
        const before = await readdir(rootOnly);
        const r = await asNobody(tr, ['file', 'get', path.join(rootOnly, 'sub')], true);
        st.diagnostic(`exit ${r.code}: ${r.stderr.trim()}`);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /permission denied/);
        assert.deepEqual(await readdir(rootOnly), before, 'nothing was created in the root-only folder');
        assert.ok((await readdir(inbox)).includes('incoming.bin'), 'the file is still in the inbox');
        // Into the member's own folder it works, and the file is the member's.
        const ok = await asNobody(tr, ['file', 'get', nobodyDir], true);
        assert.equal(ok.code, 0, ok.stderr);
        const saved = path.join(nobodyDir, 'incoming.bin');
        assert.equal(sha(await readFile(saved)), sha(bytes));
        assert.equal((await stat(saved)).uid, NOBODY, 'written by the member, not by root');
        assert.ok(!(await readdir(inbox)).includes('incoming.bin'), 'taken out of the inbox once saved');
      },
    );
    await claim('4. raw requests in the old shapes (paths as arguments) are refused', async (st) => {
      const send = await rawRequest(tr, {
        type: 'request',
        id: 1,
        cmd: 'fileSend',
        args: { target: 'ts-b', path: path.join(rootOnly, 'secret.bin') },
      });
      const take = await rawRequest(tr, { type: 'request', id: 2, cmd: 'fileTake', args: { dir: rootOnly } });
      const cancel = await rawRequest(tr, { type: 'request', id: 3, cmd: 'fileCancel', args: { path: '/' } });
      st.diagnostic(`fileSend: ${send}\nfileTake: ${take}\nfileCancel: ${cancel}`);
      for (const line of [send, take, cancel]) {
        const reply = JSON.parse(line) as { ok: boolean; error?: { code: string } };
        assert.equal(reply.ok, false);
        assert.equal(reply.error?.code, 'bad-request');
      }
      assert.match(take, /unknown command/);
      assert.deepEqual(await bReceived(), [], 'tailscaled received nothing');
      assert.deepEqual(await readdir(rootOnly), ['secret.bin']);
    });
    await claim('5. root still sends and receives normally', async () => {
      const r = await tr.cli(['file', 'cp', path.join(rootOnly, 'secret.bin'), 'ts-b:'], 60_000);
      assert.equal(r.code, 0, r.stderr);
      const got = await bReceived();
      assert.equal(got.length, 1);
      assert.equal(sha(await readFile(got[0] as string)), sha(secret));
      const back = randomBytes(50_000);
      await writeFile(path.join(work, 'back.bin'), back);
      assert.equal((await tsB.cli(['file', 'cp', path.join(work, 'back.bin'), `${ipA}:`], 60_000)).code, 0);
      await waitUntil('back.bin in the inbox', 15_000, async () =>
        (await readdir(inbox)).includes('back.bin') ? true : null,
      );
      const out = path.join(rootOnly, 'got');
      const g = await tr.cli(['file', 'get', out], 30_000);
      assert.equal(g.code, 0, g.stderr);
      assert.equal(sha(await readFile(path.join(out, 'back.bin'))), sha(back));
    });
    await claim('6. outside the group: no access to the daemon, and no upload to our own PeerAPI', async (st) => {
      const r = await asNobody(tr, ['status'], false);
      st.diagnostic(`status outside the group: exit ${r.code}: ${r.stderr.trim()}`);
      assert.notEqual(r.code, 0);
      const base = await peerApiOf(tsB, ipA);
      const before = await readdir(inbox);
      const put = await putAsNobody(ha, `${base}/v0/put/planted.txt`, 'contents chosen by a local user');
      st.diagnostic(`PUT to our own PeerAPI as uid ${NOBODY}: ${put}`);
      assert.match(put, /^error /, 'the connection is refused without an HTTP answer');
      assert.deepEqual(await readdir(inbox), before, 'nothing landed in the inbox');
    });
    await report();
  });
});
