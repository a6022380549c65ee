// Several accounts (issue 16) against two real Headscale servers on one lab LAN: Trellis node a is `trellis up` on
// the first, `trellis login` on the second; tailscaled b is on the first, tailscaled c on the second. Switching
// between the accounts keeps each node (same Headscale node id and address, no new registration on either server),
// a daemon restart keeps the account in use, and Taildrop and MagicDNS follow the account in use.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { ProfileList, StatusSnapshot } from '../../main/engine/protocol.ts';
import type { Headscale, HsNode } from './lab/headscale.ts';
import type { Namespace } from './lab/netns.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startSecondHeadscale, startTrellisNode, type TrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled, type Tailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const v4 = (s: StatusSnapshot) => s.self?.addresses.find((a) => !a.includes(':')) ?? '';

/** `dig @100.100.100.100 name A` in ns: the A records, or the status when there are none. */
async function lookup(ns: Namespace, name: string): Promise<string> {
  const r = await ns.run(['dig', '@100.100.100.100', name, 'A', '+tries=2', '+time=3', '+short'], {
    timeoutMs: 20_000,
  });
  const status = await ns.run(['dig', '@100.100.100.100', name, 'A', '+tries=2', '+time=3', '+noall', '+comments'], {
    timeoutMs: 20_000,
  });
  return r.stdout.trim() || (/status: (\w+)/.exec(status.stdout)?.[1] ?? `no answer: ${status.stderr.trim()}`);
}

/** Node ids and creation times Headscale has: a new registration would add or change one. */
const registrations = async (hs: Headscale) =>
  (await hs.nodes()).map((n: HsNode) => `${n.id}:${n.name}:${n.raw.created_at?.seconds ?? 0}`).sort();

async function listProfiles(tr: TrellisNode): Promise<ProfileList> {
  const r = await tr.cli(['switch', '--list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ProfileList;
}

/** Sends a fresh file from Trellis to the tailscaled peer and checks it arrives whole. */
async function sendTo(tr: TrellisNode, ts: Tailscaled, peer: string, work: string): Promise<void> {
  const bytes = randomBytes(64 * 1024);
  const name = `to-${peer}-${Date.now()}.bin`;
  await writeFile(path.join(work, name), bytes);
  const cp = await tr.cli(['file', 'cp', path.join(work, name), `${peer}:`], 60_000);
  assert.equal(cp.code, 0, `trellis file cp: ${cp.stderr}`);
  const into = await mkdtemp(path.join(work, `${peer}-got-`));
  const get = await ts.cli(['file', 'get', '--wait', into], 30_000);
  assert.equal(get.code, 0, `tailscale file get: ${get.stderr}`);
  assert.deepEqual(await readdir(into), [name]);
  assert.equal(sha(await readFile(path.join(into, name))), sha(bytes));
}

test('profiles: two Headscale servers, login adds, switch keeps each node, restart keeps the account', {
  timeout: 420_000,
}, async (t) => {
  if (!ready(t) || !requireTools(t, ['dig'])) return;
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b', 'c']);
    const [ha, hb, hc] = [tn.hosts.a, tn.hosts.b, tn.hosts.c];
    if (!ha || !hb || !hc) throw new Error('tailnet lab without hosts a, b, c');
    const hs1 = tn.headscale;
    const { headscale: hs2, authKey: key2 } = await startSecondHeadscale(tn);
    // c joins the second server first, so Trellis's address there differs from its address on the first.
    const tsC = await startTailscaled(hc, { name: 'c', env: TS_ENV });
    await tsC.up({ loginServer: hs2.url, authKey: key2, hostname: 'ts-c' });
    const tr = await startTrellisNode(ha, { hostname: 'trellis-a', loginServer: hs1.url, authKey: tn.authKey });
    const tsB = await startTailscaled(hb, { name: 'b', env: TS_ENV });
    await tsB.up({ loginServer: hs1.url, authKey: tn.authKey, hostname: 'ts-b' });
    const first = await tr.waitFor((s) => s.peers.length === 1 && (s.fileTargets ?? []).length === 1, 20_000);
    assert.equal(first.state, 'Running');
    const firstId = first.profile?.id ?? '';
    const work = await mkdtemp(path.join(tmpdir(), 'trellis-profiles-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    const { claim, report } = claims(t, async () => `${await lab.diagnostics()}\n--- daemon:\n${tr.output()}`);
    let second: StatusSnapshot | undefined;

    await claim('1. trellis login on the second server: Running there, with its own address', async (st) => {
      const keyFile = path.join(work, 'key2');
      await writeFile(keyFile, `${key2}\n`, { mode: 0o600 });
      const args = ['login', '--login-server', hs2.url, '--auth-key', `file:${keyFile}`, '--hostname', 'trellis-a2'];
      const r = await tr.cli(args, 90_000);
      st.diagnostic(r.stdout.trim());
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      second = await tr.waitFor((s) => s.state === 'Running' && s.peers.length === 1, 20_000);
      assert.equal(second.state, 'Running');
      assert.notEqual(second.profile?.id, firstId, 'a new account');
      assert.match(r.stdout, new RegExp(`Running\\. Addresses: .*${v4(second).replaceAll('.', '\\.')}`));
      assert.notEqual(v4(second), v4(first));
      assert.deepEqual(
        second.peers.map((p) => p.name),
        ['ts-c'],
      );
      const onHs2 = (await hs2.nodes()).find((n) => n.name === 'trellis-a2');
      assert.ok(onHs2?.ipAddresses.includes(v4(second)), 'the second server lists the node with that address');
    });

    await claim('2. switch --list shows both accounts with their servers, the second in use', async (st) => {
      const text = await tr.cli(['switch', '--list']);
      st.diagnostic(text.stdout);
      assert.equal(text.code, 0, text.stderr);
      const rows = text.stdout.trim().split('\n');
      assert.match(rows[0] ?? '', /^ID\s+Tailnet\s+Account\s+Server$/);
      const row = (id: string) => rows.find((l) => l.startsWith(`${id} `)) ?? '';
      assert.match(row(firstId), new RegExp(`tailnet\\.test .*${hs1.url}$`));
      assert.doesNotMatch(row(firstId), /\*/);
      assert.match(row(second?.profile?.id ?? '?'), new RegExp(`second\\.test .* \\* +${hs2.url}$`));
      const list = await listProfiles(tr);
      assert.deepEqual(
        list.profiles.map((p) => p.controlURL),
        [hs1.url, hs2.url],
      );
      assert.equal(list.current, second?.profile?.id);
    });

    await claim('3. on the second account, Taildrop and MagicDNS are the second tailnet’s', async () => {
      const s = await tr.waitFor((x) => (x.fileTargets ?? []).length === 1, 15_000);
      assert.deepEqual(s.fileTargets, ['ts-c.second.test']);
      const ipC = (await tsC.ip()).v4;
      assert.equal(
        await waitUntil('ts-c in MagicDNS', 15_000, async () =>
          (await lookup(ha, 'ts-c.second.test')) === ipC ? ipC : null,
        ),
        ipC,
      );
      assert.doesNotMatch(await lookup(ha, 'ts-b.tailnet.test'), /^\d/, 'the first tailnet’s names are gone');
      await sendTo(tr, tsC, 'ts-c', work);
    });

    await claim('4. switching back: Running on the first, same node and address, no new registration', async (st) => {
      const before = { one: await registrations(hs1), two: await registrations(hs2) };
      const r = await tr.cli(['switch', firstId], 60_000);
      st.diagnostic(r.stdout.trim());
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      assert.match(r.stdout, /Running\./);
      const back = await tr.waitFor((s) => s.state === 'Running' && s.peers.length === 1, 20_000);
      assert.equal(back.profile?.id, firstId);
      assert.equal(back.self?.id, first.self?.id, 'the same node');
      assert.deepEqual(back.self?.addresses, first.self?.addresses, 'the same addresses');
      assert.deepEqual(await registrations(hs1), before.one, 'nothing new on the first server');
      assert.deepEqual(await registrations(hs2), before.two, 'nothing new on the second server');
      assert.equal(await tr.ping((await tsB.ip()).v4, { count: 2, deadlineS: 20 }), true, 'packets flow to b again');
      const s = await tr.waitFor((x) => (x.fileTargets ?? []).length === 1, 15_000);
      assert.deepEqual(s.fileTargets, ['ts-b.tailnet.test']);
      assert.equal(await lookup(ha, 'ts-b.tailnet.test'), (await tsB.ip()).v4);
      assert.doesNotMatch(await lookup(ha, 'ts-c.second.test'), /^\d/, 'the second tailnet’s names are gone');
      await sendTo(tr, tsB, 'ts-b', work);
    });

    await claim('5. a daemon restart keeps the account in use (switched by tailnet name)', async () => {
      const r = await tr.cli(['switch', 'second.test'], 60_000);
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      const before = await registrations(hs2);
      await tr.restart();
      const after = await tr.waitFor((s) => s.state === 'Running' && s.peers.length === 1, 30_000);
      assert.equal(after.profile?.id, second?.profile?.id);
      assert.deepEqual(after.self?.addresses, second?.self?.addresses);
      assert.deepEqual(await registrations(hs2), before);
      assert.equal((await listProfiles(tr)).profiles.length, 2);
    });

    await claim('6. removing the first account logs it out on its server and deletes its keys', async () => {
      const r = await tr.cli(['switch', '--remove', firstId], 30_000);
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      const node = (await hs1.nodes()).find((n) => n.name === 'trellis-a');
      assert.ok(node?.expiry && node.expiry.getTime() <= Date.now() + 1000, 'expired on the first server');
      assert.deepEqual(await readdir(path.join(tr.stateDir, 'profiles')), [second?.profile?.id]);
      const still = await tr.status();
      assert.equal(still.state, 'Running', 'the account in use was not disturbed');
    });
    await report();
  });
});
