// MagicDNS, quad-100 (docs/protocol/services.md §3.4), in the tailnet lab: a Trellis node and an official tailscaled on one LAN,
// Headscale with MagicDNS on and a lab DNS server (lab/dns-server.ts on 203.0.113.1) as the global nameserver.
// From Trellis's namespace `dig @100.100.100.100` resolves the tailscaled peer's FQDN and short name, PTR maps its
// addresses back, and the answers agree with tailscaled's own quad-100; other names are forwarded to the lab
// server; junk to port 53 is counted and harms nothing.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isolatedEnv } from '../isolated-env.ts';
import type { Namespace } from './lab/netns.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, HEADSCALE_ADDR, startTrellisNode } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { TRELLIS_BIN } from './lab/trellis.ts';

const DNS_SERVER = fileURLToPath(new URL('./lab/dns-server.ts', import.meta.url));
const OUTSIDE = { 'outside.example': '192.0.2.123' };
/** What the namespace's resolv.conf holds before Trellis touches it: a nameserver of its own, and options. */
const LAB_RESOLV_CONF = '# lab resolver\nnameserver 192.0.2.53\noptions timeout:1 attempts:1\n';

interface Dig {
  status: string;
  answers: string[];
}

/** `dig @server name type` in ns: the status and the answer section (name-independent: "TYPE data"). */
async function dig(ns: Namespace, server: string, name: string, type: string, extra: string[] = []): Promise<Dig> {
  const r = await ns.run(
    ['dig', `@${server}`, name, type, '+tries=2', '+time=3', '+nocmd', '+noall', '+answer', '+comments', ...extra],
    {
      timeoutMs: 20_000,
    },
  );
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? `no answer (exit ${r.code}): ${r.stderr.trim()}`;
  const answers = r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith(';'))
    .map((l) => l.trim().split(/\s+/))
    .map((f) => `${f[3]} ${f.slice(4).join(' ')}`);
  return { status, answers };
}

test('MagicDNS: quad-100 on Trellis answers like tailscaled, forwards the rest, shrugs off junk', {
  timeout: 120_000,
}, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b'], {
      headscale: {
        extraConfig: { dns: { override_local_dns: true, nameservers: { global: [HEADSCALE_ADDR] } } },
      },
    });
    const upstream = tn.net.spawn(
      [process.execPath, '--import', 'tsx', DNS_SERVER, HEADSCALE_ADDR, '53', JSON.stringify(OUTSIDE)],
      {
        label: 'lab dns server',
      },
    );
    assert.ok(await upstream.waitForOutput(/^listening$/m, 10_000), `lab DNS server:\n${upstream.output()}`);
    const [ha, hb] = [tn.hosts.a, tn.hosts.b];
    if (!ha || !hb) throw new Error('tailnet lab without hosts a and b');
    const tr = await startTrellisNode(ha, {
      hostname: 'trellis-a',
      loginServer: tn.headscale.url,
      authKey: tn.authKey,
    });
    const ts = await startTailscaled(hb, { name: 'b', env: TS_ENV });
    await ts.up({ loginServer: tn.headscale.url, authKey: tn.authKey, hostname: 'ts-b' });
    await tr.waitFor((s) => s.peers.length === 1, 10_000);
    const tsIp = await ts.ip();
    const fqdn = 'ts-b.tailnet.test';
    const { claim, report } = claims(t, async () => lab.diagnostics());

    await claim('1. FQDN and short name → the address Headscale assigned (A); PTR back to the FQDN', async (st) => {
      const nodes = await tn.headscale.nodes();
      const assigned = nodes.find((n) => n.name === 'ts-b')?.ipAddresses.find((a) => !a.includes(':'));
      assert.equal(assigned, tsIp.v4);
      for (const name of [fqdn, `${fqdn}.`, 'ts-b']) {
        const r = await dig(ha, '100.100.100.100', name, 'A');
        st.diagnostic(`A ${name}: ${r.status} ${r.answers.join(', ')}`);
        assert.deepEqual(r, { status: 'NOERROR', answers: [`A ${assigned}`] }, name);
      }
      for (const ip of [tsIp.v4, tsIp.v6]) {
        const r = await dig(ha, '100.100.100.100', '-x', ip);
        st.diagnostic(`PTR ${ip}: ${r.status} ${r.answers.join(', ')}`);
        assert.deepEqual(r, { status: 'NOERROR', answers: [`PTR ${fqdn}.`] }, ip);
      }
      for (const server of ['100.100.100.100', 'fd7a:115c:a1e0::53']) {
        const tcp = await dig(ha, server, fqdn, 'A', ['+tcp']);
        st.diagnostic(`A ${fqdn} over TCP to ${server}: ${tcp.status} ${tcp.answers.join(', ')}`);
        assert.deepEqual(tcp, { status: 'NOERROR', answers: [`A ${assigned}`] }, `over TCP to ${server}`);
      }
      const v6 = await dig(ha, 'fd7a:115c:a1e0::53', fqdn, 'A');
      assert.deepEqual(v6, { status: 'NOERROR', answers: [`A ${assigned}`] }, 'over IPv6 to fd7a:115c:a1e0::53');
    });
    await claim('2. every answer about the peer agrees with tailscaled’s own quad-100', async (st) => {
      const queries: Array<[string, string]> = [
        [fqdn, 'A'],
        [fqdn, 'AAAA'],
        [fqdn, 'TXT'],
        ['trellis-a.tailnet.test', 'A'],
        ['trellis-a.tailnet.test', 'AAAA'],
        [tsIp.v4, 'PTR'],
        [tsIp.v6, 'PTR'],
      ];
      const bad: string[] = [];
      for (const [name, type] of queries) {
        const args: [string, string] = type === 'PTR' ? ['-x', name] : [name, type];
        const [mine, theirs] = await Promise.all([
          dig(ha, '100.100.100.100', ...args),
          dig(hb, '100.100.100.100', ...args),
        ]);
        st.diagnostic(`${type} ${name}: trellis ${JSON.stringify(mine)}; tailscaled ${JSON.stringify(theirs)}`);
        if (JSON.stringify(mine) !== JSON.stringify(theirs)) bad.push(`${type} ${name}`);
      }
      assert.deepEqual(bad, [], `Trellis and tailscaled disagree on: ${bad.join(', ')}`);
    });
    await claim('3. unknown tailnet names are NXDOMAIN; other names are forwarded to the lab server', async (st) => {
      const nx = await dig(ha, '100.100.100.100', 'nobody.tailnet.test', 'A');
      assert.equal(nx.status, 'NXDOMAIN');
      const out = await dig(ha, '100.100.100.100', 'outside.example', 'A');
      st.diagnostic(`outside.example: ${JSON.stringify(out)}`);
      assert.deepEqual(out, { status: 'NOERROR', answers: ['A 192.0.2.123'] });
      const outTcp = await dig(ha, '100.100.100.100', 'outside.example', 'A', ['+tcp']);
      assert.deepEqual(outTcp, { status: 'NOERROR', answers: ['A 192.0.2.123'] }, 'forwarded, asked over TCP');
      const missing = await dig(ha, '100.100.100.100', 'missing.example', 'A');
      assert.equal(missing.status, 'NXDOMAIN', 'the upstream NXDOMAIN is relayed');
    });
    await claim(
      '4. junk to 100.100.100.100:53 is counted, answered FORMERR or dropped; quad-100 keeps working',
      async (st) => {
        const before = (await tr.status()).counters;
        const junk =
          "const s=require('dgram').createSocket('udp4');const c=require('crypto');let n=0;" +
          "const go=()=>{if(n++>=200)return s.close();const b=c.randomBytes(1+(n*13)%300);s.send(b,53,'100.100.100.100',go)};go()";
        await ha.exec([process.execPath, '-e', junk], { timeoutMs: 20_000 });
        await new Promise((r) => setTimeout(r, 500));
        const after = (await tr.status()).counters;
        st.diagnostic(`dns counters before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
        assert.ok(before && after, 'status has counters');
        assert.ok(after.dnsQueries - before.dnsQueries >= 200, 'all 200 junk datagrams reached quad-100');
        assert.equal(tr.process.hasExited, false, 'the daemon is alive');
        const r = await dig(ha, '100.100.100.100', fqdn, 'A');
        assert.deepEqual(r, { status: 'NOERROR', answers: [`A ${tsIp.v4}`] });
      },
    );
    await claim(
      '5. accept-DNS: the OS resolver points at quad-100 (getent works); down restores it byte for byte',
      async (st) => {
        const resolvConf = path.join('/etc/netns', ha.name, 'resolv.conf');
        const original = LAB_RESOLV_CONF;
        await writeFile(resolvConf, original);
        await cliOk(tr, ['down'], 15_000);
        await cliOk(tr, ['up', '--accept-dns=true'], 30_000);
        const ours = await waitFor(
          () => readFile(resolvConf, 'utf8'),
          (c) => c.includes('nameserver 100.100.100.100'),
        );
        st.diagnostic(`while up:\n${ours}`);
        assert.match(ours, /^search tailnet\.test$/m);
        const g = await ha.run(['getent', 'hosts', 'ts-b'], { timeoutMs: 10_000 });
        st.diagnostic(`getent hosts ts-b: ${g.stdout.trim()}`);
        assert.match(g.stdout, new RegExp(`^${tsIp.v4.replaceAll('.', '\\.')}\\s+ts-b\\.tailnet\\.test`, 'm'));
        await cliOk(tr, ['down'], 15_000);
        const after = await waitFor(
          () => readFile(resolvConf, 'utf8'),
          (c) => c === original,
        );
        assert.equal(after, original, 'resolv.conf after trellis down');
      },
    );
    await claim('6. a daemon killed while up: the next start restores resolv.conf byte for byte', async (st) => {
      const resolvConf = path.join('/etc/netns', ha.name, 'resolv.conf');
      const original = await readFile(resolvConf, 'utf8');
      await cliOk(tr, ['up'], 30_000);
      await waitFor(
        () => readFile(resolvConf, 'utf8'),
        (c) => c.includes('nameserver 100.100.100.100'),
      );
      tr.process.signal('SIGKILL');
      await tr.process.exited;
      assert.match(await readFile(resolvConf, 'utf8'), /nameserver 100\.100\.100\.100/, 'left pointing at quad-100');
      const args = [
        'daemon',
        '--state-dir',
        tr.stateDir,
        '--socket',
        tr.socket,
        '--tun',
        tr.tun,
        '--port',
        String(tr.port),
      ];
      const again = ha.spawn([process.execPath, TRELLIS_BIN, ...args], {
        label: 'trellis daemon (restarted)',
        env: isolatedEnv(tr.dir),
      });
      // it restores at start, then (still wanting to run) connects and points the OS at quad-100 again
      const running = await waitFor(
        () => tr.status().catch(() => undefined),
        (s) => s?.state === 'Running',
      );
      const output = () => `restarted daemon output:\n${again.output().slice(-1500)}`;
      assert.equal(running?.state, 'Running', output());
      // Down at once, while the PeerAPI may still be starting (a down then once left resolv.conf pointing at quad-100).
      await cliOk(tr, ['down'], 15_000, output);
      const after = await waitFor(
        () => readFile(resolvConf, 'utf8'),
        (c) => c === original,
      );
      st.diagnostic(output());
      assert.equal(after, original, `resolv.conf after restart and down\n${output()}`);
    });
    await claim(
      '7. down while up is still connecting, four times: no TUN stays, resolv.conf as it was; then up works',
      async (st) => {
        const resolvConf = path.join('/etc/netns', ha.name, 'resolv.conf');
        const original = await readFile(resolvConf, 'utf8');
        for (let round = 0; round < 5; round++) {
          // up waits for Running; down lands at a different moment of its connecting each round
          const up = tr.cli(['up'], 4_000);
          await new Promise((r) => setTimeout(r, 300 + round * 150));
          await cliOk(tr, ['down'], 15_000);
          await up;
          const link = await waitFor(
            () => ha.run(['ip', '-brief', 'link', 'show', tr.tun]),
            (r) => r.code !== 0,
          );
          assert.notEqual(link.code, 0, `round ${round}: ${tr.tun} still there after down: ${link.stdout.trim()}`);
          const now = await waitFor(
            () => readFile(resolvConf, 'utf8'),
            (c) => c === original,
          );
          assert.equal(now, original, `round ${round}: resolv.conf after down`);
        }
        await cliOk(tr, ['up'], 30_000);
        const r = await dig(ha, '100.100.100.100', fqdn, 'A');
        st.diagnostic(`after the rounds, A ${fqdn}: ${JSON.stringify(r)}`);
        assert.deepEqual(r, { status: 'NOERROR', answers: [`A ${tsIp.v4}`] });
        await cliOk(tr, ['down'], 15_000);
      },
    );
    await report();
  });
});

/** Runs a trellis command; it must succeed (its stderr, and what extra() says, in the failure). */
async function cliOk(
  tr: { cli(args: string[], timeoutMs?: number): Promise<{ code: number | null; stderr: string }> },
  args: string[],
  timeoutMs: number,
  extra: () => string = () => '',
): Promise<void> {
  const r = await tr.cli(args, timeoutMs);
  assert.equal(r.code, 0, `trellis ${args.join(' ')}: ${r.stderr.trim()}\n${extra()}`);
}

/** Polls get() every 200 ms (≤ 15 s) until pred holds; returns the last value either way. */
async function waitFor<T>(get: () => Promise<T>, pred: (v: T) => boolean): Promise<T> {
  let v = await get();
  for (let i = 0; i < 75 && !pred(v); i++) {
    await new Promise((r) => setTimeout(r, 200));
    v = await get();
  }
  return v;
}
