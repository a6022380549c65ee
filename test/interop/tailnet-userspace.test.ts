// Userspace networking against real parts: a Trellis daemon run as uid 65534 with no capability at all
// (`--tun userspace-networking`, no TUN, nothing of its namespace touched) logs in to Headscale beside a tailscaled
// node with a TUN. Apps on Trellis's host reach the tailnet only through its SOCKS5 and HTTP proxies: curl fetches
// 20 MB from an HTTP server on tailscaled's host by MagicDNS name and by address, through SOCKS5 and through the
// HTTP proxy (plain and CONNECT); UDP goes through SOCKS5 UDP ASSOCIATE to an echo server there and to quad-100.
// Inbound, the netstack answers tailscaled's pings (disco, ICMP, TSMP) and takes `tailscale file cp` into the inbox
// (and `trellis file cp` goes out through it); the netmap's filter decides what gets in as in TUN mode (the policy
// opens only TCP 5001 from tailscaled towards Trellis).
// Then tailscaled becomes the exit node: a SOCKS5 connection to an "internet" host behind it (reachable from nowhere
// else) arrives from the exit node's address, over IPv4 and IPv6. Offering an exit node is refused with a health
// message, and at the end the namespace's links, rules, routes, forwarding and firewall are as before the daemon
// started.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { type Namespace, withLab } from './lab/netns.ts';
import { tailscalePing } from './lab/peer-probe.ts';
import { approveRoutes, buildInternetBehind, healthHas, INTERNET, setPrefs } from './lab/routes.ts';
import { claims, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

const SOCKS_UDP = fileURLToPath(new URL('./lab/socks-udp.mjs', import.meta.url));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const NOBODY = 65534;
const TRELLIS = 'trellis-a';
const TS = 'ts-b';
// Headscale hands out addresses in registration order: Trellis first. Checked after both are up.
const IP_TRELLIS = '100.64.0.1';
const IP_TS = '100.64.0.2';
/** Trellis's IPv6 tailnet address (Headscale allocates sequentially): a host alias holds one prefix. */
const IP6_TRELLIS = 'fd7a:115c:a1e0::1';
const POLICY = {
  hosts: { [TRELLIS]: `${IP_TRELLIS}/32`, [`${TRELLIS}-v6`]: `${IP6_TRELLIS}/128`, [TS]: `${IP_TS}/32` },
  acls: [
    { action: 'accept', src: [TRELLIS], dst: [`${TS}:*`] },
    { action: 'accept', proto: 'tcp', src: [TS], dst: [`${TRELLIS}:5001`] },
    { action: 'accept', src: [TRELLIS, `${TRELLIS}-v6`], dst: ['autogroup:internet:*'] },
  ],
};
const SOCKS = '127.0.0.1:1055';
const HTTP_PROXY = '127.0.0.1:1056';
const WEB_PORT = 8000;
/** A web server in Trellis's namespace on loopback only: reachable from the tailnet only through a forward. */
const LOCAL_WEB_PORT = 8011;
const ECHO_PORT = 7007;
const BLOB_BYTES = 20 * 1024 * 1024;
// Behind tailscaled's host b: its ISP router and the "internet" host beyond it (buildInternetBehind).
const B_WAN = INTERNET.wan;
const B_WAN6 = INTERNET.wan6;
const INET_ADDR = INTERNET.inet;
const INET_ADDR6 = INTERNET.inet6;
const WHOAMI_PORT = 8099;
// node -e <src> port → an HTTP server answering each request with the caller's address
const WHOAMI_JS =
  "require('node:http').createServer((q,r)=>r.end(q.socket.remoteAddress.replace(/^::ffff:/,''))).listen(+process.argv[1]," +
  "()=>console.log('listening'));setTimeout(()=>process.exit(0),600000)";

// node -e <src> port: a UDP echo server on every address
const ECHO_JS =
  "const s=require('node:dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(Buffer.concat([Buffer.from('echo:'),m]),r.port,r.address));" +
  "s.bind(+process.argv[1],()=>console.log('listening'));setTimeout(()=>process.exit(0),600000)";
// node -e <src> host port ms → connected | refused | timeout | error <code>
const PROBE_JS =
  "const s=require('node:net').connect({host:process.argv[1],port:+process.argv[2]});" +
  "const out=(w)=>{console.log(w);process.exit(0)};setTimeout(()=>out('timeout'),+process.argv[3]);" +
  "s.on('connect',()=>{s.destroy();out('connected')});" +
  "s.on('error',(e)=>out(e.code==='ECONNREFUSED'?'refused':'error '+e.code))";

/** What a daemon could have changed in its namespace: links, rules, routes of every table, forwarding. */
async function netState(ns: Namespace): Promise<string> {
  const parts: string[] = [];
  for (const cmd of [
    ['ip', '-o', 'link'],
    ['ip', 'rule'],
    ['ip', '-6', 'rule'],
    ['ip', 'route', 'show', 'table', 'all'],
    ['ip', '-6', 'route', 'show', 'table', 'all'],
    ['sysctl', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'],
    ['iptables', '-S'],
    ['iptables', '-t', 'nat', '-S'],
    ['iptables', '-t', 'mangle', '-S'],
    ['ip6tables', '-S'],
  ]) {
    parts.push(`$ ${cmd.join(' ')}\n${await ns.exec(cmd)}`);
  }
  return parts.join('\n');
}

/** curl inside ns with extra args; the body into a file, read back. */
async function curl(ns: Namespace, out: string, args: string[]): Promise<Buffer> {
  await rm(out, { force: true });
  const r = await ns.run(['curl', '-sS', '--fail', '--max-time', '120', '-o', out, ...args], { timeoutMs: 130_000 });
  if (r.code !== 0) throw new Error(`curl ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return readFile(out);
}

test('userspace networking: an unprivileged Trellis daemon on the tailnet through its proxies', {
  timeout: 420_000,
}, async (t) => {
  const tools = ['headscale', 'tailscaled', 'tailscale', 'ip', 'iptables', 'ip6tables', 'curl', 'setpriv', 'python3'];
  if (!requireTools(t, [...tools, 'sysctl'])) return;
  if (!existsSync('/dev/net/tun')) {
    if (process.env.CI === 'true') throw new Error('the userspace lab needs /dev/net/tun for tailscaled');
    t.skip('the userspace lab needs /dev/net/tun for tailscaled');
    return;
  }
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b'], { headscale: { policy: POLICY } });
    const [ha, hb] = [tn.hosts.a, tn.hosts.b];
    if (!ha || !hb) throw new Error('tailnet lab without hosts a and b');
    const work = await mkdtemp(path.join(tmpdir(), 'trellis-userspace-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    await chmod(work, 0o755);
    const blob = randomBytes(BLOB_BYTES);
    await writeFile(path.join(work, 'blob.bin'), blob);

    // The kernel adds the link-local route once duplicate address detection ends: settled first, then compared.
    await waitUntil('no tentative IPv6 address in namespace a', 10_000, async () =>
      (await ha.exec(['ip', '-6', 'addr', 'show', 'tentative'])).trim() === '' ? true : null,
    );
    const before = await netState(ha);
    const { inet } = await buildInternetBehind(lab, hb);
    const whoami = inet.spawn([process.execPath, '-e', WHOAMI_JS, String(WHOAMI_PORT)], { label: 'whoami@inet' });
    assert.ok(await whoami.waitForOutput(/listening/, 10_000), 'the internet host did not start');
    const tr = await startTrellisNode(ha, {
      hostname: TRELLIS,
      loginServer: tn.headscale.url,
      authKey: tn.authKey,
      tun: 'userspace-networking',
      runAsUid: NOBODY,
      args: ['--socks5-server', SOCKS, '--outbound-http-proxy-listen', HTTP_PROXY],
    });
    const ts = await startTailscaled(hb, { name: 'b', env: TS_ENV });
    await ts.up({ loginServer: tn.headscale.url, authKey: tn.authKey, hostname: TS });
    const web = hb.spawn(['python3', '-m', 'http.server', '--bind', '0.0.0.0', '--directory', work, String(WEB_PORT)], {
      label: 'http.server@b',
    });
    const echo = hb.spawn([process.execPath, '-e', ECHO_JS, String(ECHO_PORT)], { label: 'udp echo@b' });
    assert.ok(await echo.waitForOutput(/listening/, 10_000), 'the UDP echo server did not start');
    const { claim, report } = claims(
      t,
      async () => `${await lab.diagnostics()}\n--- trellis:\n${tr.output()}\n--- web:\n${web.output()}`,
    );

    const up = await tr.waitFor((s) => s.peers.some((p) => p.online && p.addresses.includes(IP_TS)), 60_000);
    const tsName = up.peers.find((p) => p.addresses.includes(IP_TS))?.dnsName.replace(/\.$/, '') ?? '';

    await claim('0. the daemon runs as uid 65534 without any capability, in userspace mode', async (st) => {
      const pid = tr.process.child.pid;
      const proc = await readFile(`/proc/${pid}/status`, 'utf8');
      st.diagnostic(
        proc
          .split('\n')
          .filter((l) => /^(Uid|Gid|Cap)/.test(l))
          .join('; '),
      );
      assert.match(proc, new RegExp(`^Uid:\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}$`, 'm'));
      for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
        assert.match(proc, new RegExp(`^${cap}:\\s+0+$`, 'm'), `${cap} is not empty`);
      }
      assert.equal((await tr.ip()).v4, IP_TRELLIS);
      assert.deepEqual(up.networking, { mode: 'userspace', socks5: SOCKS, httpProxy: HTTP_PROXY });
      assert.match(tsName, new RegExp(`^${TS}\\.`), 'the peer has no MagicDNS name in status');
    });

    await claim('1. curl --socks5-hostname: 20 MB by MagicDNS name and by address, sha256 equal', async (st) => {
      for (const host of [tsName, TS, IP_TS]) {
        const t0 = Date.now();
        const got = await curl(ha, path.join(work, 'got.bin'), [
          '--socks5-hostname',
          SOCKS,
          `http://${host}:${WEB_PORT}/blob.bin`,
        ]);
        const ms = Date.now() - t0;
        st.diagnostic(`${host}: ${got.length} bytes in ${ms} ms (${((got.length * 8) / ms / 1000).toFixed(0)} Mbit/s)`);
        assert.equal(sha(got), sha(blob), `through SOCKS5 to ${host}`);
      }
    });

    await claim('2. the HTTP proxy: plain proxying and CONNECT, sha256 equal', async () => {
      const url = `http://${tsName}:${WEB_PORT}/blob.bin`;
      assert.equal(sha(await curl(ha, path.join(work, 'got.bin'), ['-x', `http://${HTTP_PROXY}`, url])), sha(blob));
      assert.equal(
        sha(await curl(ha, path.join(work, 'got.bin'), ['-p', '-x', `http://${HTTP_PROXY}`, url])),
        sha(blob),
      );
    });

    await claim('3. UDP through SOCKS5 UDP ASSOCIATE: an echo server on the peer, and quad-100', async (st) => {
      for (const host of [IP_TS, tsName]) {
        const r = await ha.run([process.execPath, SOCKS_UDP, '127.0.0.1', '1055', host, String(ECHO_PORT), 'hello'], {
          timeoutMs: 20_000,
        });
        st.diagnostic(`${host}: ${r.stdout.trim() || r.stderr.trim()}`);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), { from: `${IP_TS}:${ECHO_PORT}`, text: 'echo:hello' });
      }
      // The netstack's own DNS to quad-100 is answered in the engine, as a TUN's is.
      const query = dnsPacket.encode({ type: 'query', id: 7, flags: 256, questions: [{ type: 'A', name: tsName }] });
      const r = await ha.run(
        [process.execPath, SOCKS_UDP, '127.0.0.1', '1055', '100.100.100.100', '53', `hex:${query.toString('hex')}`],
        { timeoutMs: 20_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const reply = JSON.parse(r.stdout) as { from: string; hex: string };
      const answers = (dnsPacket.decode(Buffer.from(reply.hex, 'hex')).answers ?? []).flatMap((x) =>
        x.type === 'A' ? [String(x.data)] : [],
      );
      st.diagnostic(`quad-100 via SOCKS5 UDP: ${tsName} → ${JSON.stringify(answers)}`);
      assert.equal(reply.from, '100.100.100.100:53');
      assert.deepEqual(answers, [IP_TS]);
    });

    await claim('4. tailscale ping (disco, --icmp, --tsmp) gets answers from Trellis', async (st) => {
      for (const args of [[], ['--icmp'], ['--tsmp']]) {
        const r = await waitUntil(`tailscale ping ${args.join(' ')}`, 30_000, async () => {
          const p = await tailscalePing(ts, IP_TRELLIS, ['-c', '3', ...args]);
          return p.ok ? p : null;
        });
        st.diagnostic(`ping ${args.join(' ') || '(disco)'}: ${r.line}`);
      }
    });

    await claim('5. tailscale file cp to Trellis lands in its inbox', async (st) => {
      const file = path.join(work, 'sent.bin');
      const data = randomBytes(3 * 1024 * 1024);
      await writeFile(file, data);
      await waitUntil('tailscale file cp --targets lists trellis-a', 30_000, async () => {
        const r = await ts.cli(['file', 'cp', '--targets'], 10_000);
        return r.stdout.includes(TRELLIS) ? r.stdout : null;
      });
      const r = await ts.cli(['file', 'cp', file, `${IP_TRELLIS}:`], 60_000);
      assert.equal(r.code, 0, `tailscale file cp: ${r.stderr}${r.stdout}`);
      const got = await waitUntil('the file in the inbox', 20_000, async () => {
        const b = await readFile(path.join(tr.stateDir, 'taildrop', 'sent.bin')).catch(() => null);
        return b && b.length === data.length ? b : null;
      });
      assert.equal(sha(got), sha(data));
      st.diagnostic(`${data.length} bytes received`);
    });

    await claim('5b. trellis file cp to tailscaled goes out through the netstack', async (st) => {
      const file = path.join(work, 'back.bin');
      const data = randomBytes(5 * 1024 * 1024);
      await writeFile(file, data);
      await tr.waitFor((s) => (s.fileTargets ?? []).includes(tsName), 20_000);
      const r = await tr.cli(['file', 'cp', file, `${TS}:`], 60_000);
      assert.equal(r.code, 0, `trellis file cp: ${r.stderr}${r.stdout}`);
      st.diagnostic(r.stdout.trim());
      const inbox = path.join(work, 'b-inbox');
      await mkdir(inbox);
      const g = await ts.cli(['file', 'get', inbox], 30_000);
      assert.equal(g.code, 0, `tailscale file get: ${g.stderr}`);
      assert.equal(sha(await readFile(path.join(inbox, 'back.bin'))), sha(data));
    });

    await claim('6. the netmap filter: TCP 5001 gets in (the stack refuses it), 5002 is dropped', async (st) => {
      const probe = async (port: number) => {
        const r = await hb.run([process.execPath, '-e', PROBE_JS, IP_TRELLIS, String(port), '5000'], {
          timeoutMs: 15_000,
        });
        return r.stdout.trim();
      };
      const dropped = async () => (await tr.status()).counters?.filterDropped ?? -1;
      const d0 = await dropped();
      const open = await probe(5001);
      const d1 = await dropped();
      const closed = await probe(5002);
      const d2 = await dropped();
      st.diagnostic(`5001: ${open} (filter drops ${d0} → ${d1}); 5002: ${closed} (→ ${d2})`);
      assert.equal(open, 'refused', 'the allowed port reaches the netstack, which has no listener there');
      assert.equal(d1, d0, 'nothing dropped for the allowed port');
      assert.notEqual(closed, 'connected');
      assert.ok(d2 > d1, 'the filter dropped the SYN to the denied port');
    });

    await claim('6b. a forwarded tailnet port reaches a local listener; a port the ACLs deny does not', async (st) => {
      const local = ha.spawn(
        ['python3', '-m', 'http.server', '--bind', '127.0.0.1', '--directory', work, String(LOCAL_WEB_PORT)],
        { label: 'http.server@a (local only)' },
      );
      try {
        await waitUntil('the local-only web server', 10_000, async () =>
          (await ha.run(['curl', '-sS', '-o', '/dev/null', `http://127.0.0.1:${LOCAL_WEB_PORT}/`])).code === 0
            ? true
            : null,
        );
        const set = await tr.cli(['set', `--forward-ports=5001=${LOCAL_WEB_PORT},5002=${LOCAL_WEB_PORT}`], 15_000);
        assert.equal(set.code, 0, `trellis set --forward-ports: ${set.stderr}`);
        const url = `http://${IP_TRELLIS}:5001/blob.bin`;
        const got = await waitUntil('the forward answering', 15_000, async () =>
          curl(hb, path.join(work, 'fwd.bin'), [url]).catch(() => null),
        );
        assert.equal(sha(got), sha(blob), 'from the peer through the forward to 127.0.0.1');
        const denied = await hb.run(['curl', '-sS', '--max-time', '5', `http://${IP_TRELLIS}:5002/`], {
          timeoutMs: 15_000,
        });
        st.diagnostic(`5002 (forwarded, ACLs deny): exit ${denied.code} ${denied.stderr.trim()}`);
        assert.notEqual(denied.code, 0, 'the netmap filter still decides who reaches a forwarded port');
      } finally {
        await tr.cli(['set', '--forward-ports='], 15_000);
        await local.stop();
      }
    });

    await claim(
      '7. with tailscaled as exit node, SOCKS5 to the internet (IPv4 and IPv6) arrives from its address',
      async (st) => {
        const url = `http://${INET_ADDR}:${WHOAMI_PORT}/`;
        for (const u of [url, `http://[${INET_ADDR6}]:${WHOAMI_PORT}/`]) {
          const direct = await ha.run(['curl', '-sS', '--max-time', '10', '--socks5', SOCKS, u], { timeoutMs: 20_000 });
          st.diagnostic(`no exit node, ${u}: exit ${direct.code} ${direct.stderr.trim()}`);
          assert.notEqual(direct.code, 0, 'the internet is out of reach from the host without an exit node');
        }
        assert.equal((await ts.cli(['set', '--advertise-exit-node'])).code, 0);
        await waitUntil('Headscale listing the exit route', 20_000, async () =>
          (await tn.headscale.nodes()).some((n) => n.name === TS) ? true : null,
        );
        await approveRoutes(tn.headscale, TS, ['0.0.0.0/0', '::/0']);
        await tr.waitFor((s) => s.peers.some((p) => p.addresses.includes(IP_TS) && p.exitNodeOption), 30_000);
        const set = await tr.cli(['set', `--exit-node=${IP_TS}`], 30_000);
        assert.equal(set.code, 0, `trellis set --exit-node: ${set.stderr}${set.stdout}`);
        const seen = await waitUntil('the internet answering through the exit node', 30_000, async () => {
          const r = await ha.run(['curl', '-sS', '--max-time', '5', '--socks5', SOCKS, url], { timeoutMs: 15_000 });
          return r.code === 0 ? r.stdout.trim() : null;
        });
        st.diagnostic(`the internet saw ${seen}`);
        assert.equal(seen, B_WAN);
        // An IPv6 address outside the tailnet goes to the exit node as well.
        const url6 = `http://[${INET_ADDR6}]:${WHOAMI_PORT}/`;
        let last6 = '';
        const seen6 = await waitUntil('the internet answering over IPv6 through the exit node', 30_000, async () => {
          const r = await ha.run(['curl', '-sS', '--max-time', '5', '--socks5', SOCKS, url6], { timeoutMs: 15_000 });
          last6 = `exit ${r.code} ${r.stderr.trim()}`;
          return r.code === 0 ? r.stdout.trim() : null;
        }).catch(async (e: Error) => {
          throw new Error(
            `${e.message}; the last curl: ${last6}; counters ${JSON.stringify((await tr.status()).counters)}`,
          );
        });
        st.diagnostic(`the internet saw ${seen6} over IPv6`);
        assert.equal(seen6, B_WAN6);
      },
    );

    await claim('8. offering an exit node is refused with one plain health message', async (st) => {
      await setPrefs(tr.socket, { advertiseExitNode: true });
      const s = await tr.waitFor((x) => healthHas(x, 'not supported in userspace networking'), 10_000);
      st.diagnostic(JSON.stringify(s.health));
      assert.ok(healthHas(s, 'not supported in userspace networking'), JSON.stringify(s.health));
    });

    await claim("9. no TUN and nothing changed in the daemon's namespace (rules, routes, firewall)", async () => {
      const after = await netState(ha);
      assert.equal(after, before);
      assert.doesNotMatch(after, /tun|trellis/);
    });
    await report();
    web.signal('SIGTERM');
    echo.signal('SIGTERM');
    whoami.signal('SIGTERM');
  });
});
