// Official-node parity (docs/parity.md): tailscaled node C asks the same questions of tailscaled node D and of
// Trellis node T — every `tailscale ping` type, `tailscale whois`, the PeerAPI's endpoints, what `tailscale status`
// and `tailscale file cp --targets` show, a Wake-on-LAN request and a TCP connection the ACLs refuse — and T's
// answers must agree with D's in what matters: ping success per type, the whois result, status codes, error texts
// and the key headers — over HTTP/1.1 and over h2c (tailscaled's PeerAPI speaks both on one port). The policy opens every TCP/UDP port but 7000, so the refusal has something to refuse.
// PARITY_DUMP=<file> writes everything C saw, for the table in docs/parity.md.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { withLab } from './lab/netns.ts';
import {
  type ProbeAnswer,
  type ProbeRequest,
  probePeerApi,
  probePeerApiH2c,
  tailscalePing,
  tailscaleWhois,
} from './lab/peer-probe.ts';
import { claims, peerApiOf, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';

const CLOSED_PORT = 7000;
const POLICY = {
  acls: [{ action: 'accept', src: ['*'], dst: [`*:1-${CLOSED_PORT - 1}`, `*:${CLOSED_PORT + 1}-65535`] }],
};
const WOL_MAC = '02:00:5e:10:20:30';

const REQUESTS: ProbeRequest[] = [
  { method: 'GET', path: '/' },
  { method: 'HEAD', path: '/' },
  { method: 'OPTIONS', path: '/' },
  { method: 'POST', path: '/', body: 'x' },
  { method: 'GET', path: '/?q=1' },
  { method: 'GET', path: '/', headers: { host: 'peer' } },
  { method: 'GET', path: '/', headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/1' } },
  { method: 'GET', path: '/', headers: { origin: 'http://evil.example' } },
  { method: 'GET', path: '/', headers: { referer: 'http://evil.example/' } },
  { method: 'GET', path: '/', headers: { host: 'evil.example:80' } },
  { method: 'GET', path: '/v0/put/' },
  { method: 'GET', path: '/v0/put/none.txt' },
  { method: 'PUT', path: '/v0/put/parity.txt', body: 'parity' },
  { method: 'PUT', path: '/v0/put/..', body: 'x' },
  { method: 'PUT', path: '/v0/put/resume.txt', body: 'x', headers: { range: 'bytes=1-2' } },
  { method: 'DELETE', path: '/v0/put/parity.txt' },
  { method: 'GET', path: '/v0/put' },
  { method: 'GET', path: '/v0/env' },
  { method: 'GET', path: '/v0/metrics' },
  { method: 'GET', path: '/v0/goroutines' },
  { method: 'GET', path: '/v0/magicsock' },
  { method: 'GET', path: '/v0/interfaces' },
  { method: 'GET', path: '/v0/doctor' },
  { method: 'GET', path: '/v0/sockstats' },
  { method: 'GET', path: '/v0/dnsfwd' },
  { method: 'GET', path: '/v0/ingress' },
  { method: 'POST', path: '/v0/ingress' },
  { method: 'GET', path: '/v0/wol' },
  { method: 'POST', path: '/v0/wol' },
  { method: 'POST', path: '/v0/wol?mac=nonsense' },
  { method: 'POST', path: `/v0/wol?mac=${WOL_MAC}` },
  { method: 'GET', path: '/v0/connector/transit-ip' },
  { method: 'GET', path: '/v0/drive/' },
  { method: 'GET', path: '/nope' },
];
/** Over the IPv6 address. */
const V6_REQUESTS: ProbeRequest[] = [
  { method: 'HEAD', path: '/' },
  { method: 'GET', path: '/v0/put/' },
  { method: 'GET', path: '/nope' },
];
/** Over h2c: pages, refusals, Taildrop (a PUT, its checks), the capability-only and unknown paths. */
const H2C_REQUESTS: ProbeRequest[] = [
  { method: 'GET', path: '/' },
  { method: 'HEAD', path: '/' },
  { method: 'GET', path: '/', headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/1' } },
  { method: 'GET', path: '/', headers: { origin: 'http://evil.example' } },
  { method: 'GET', path: '/', headers: { host: 'evil.example:80' } },
  { method: 'GET', path: '/', headers: { host: 'peer' } },
  { method: 'GET', path: '/v0/put/' },
  { method: 'GET', path: '/v0/put/none.txt' },
  { method: 'PUT', path: '/v0/put/h2c.txt', body: 'over h2c' },
  { method: 'PUT', path: '/v0/put/..', body: 'x' },
  { method: 'PUT', path: '/v0/put/resume.txt', body: 'x', headers: { range: 'bytes=1-2' } },
  { method: 'DELETE', path: '/v0/put/h2c.txt' },
  { method: 'GET', path: '/v0/env' },
  { method: 'POST', path: '/v0/ingress' },
  { method: 'GET', path: '/v0/wol' },
  { method: 'POST', path: '/v0/wol?mac=nonsense' },
  { method: 'GET', path: '/v0/drive/' },
  { method: 'GET', path: '/nope' },
];
/** From a node of another user: who may do what. */
const OTHER_USER_REQUESTS: ProbeRequest[] = [
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/v0/put/' },
  { method: 'PUT', path: '/v0/put/from-other.txt', body: 'x' },
  { method: 'DELETE', path: '/v0/put/from-other.txt' },
  { method: 'POST', path: `/v0/wol?mac=${WOL_MAC}` },
  { method: 'GET', path: '/v0/env' },
  { method: 'GET', path: '/nope' },
];
/** Headers whose presence (and, but for the length, value) must agree. */
const KEY_HEADERS = ['content-type', 'x-content-type-options', 'content-security-policy', 'x-frame-options'];

const PINGS: Array<{ name: string; args: string[]; v6?: true }> = [
  { name: 'disco', args: ['-c', '3'] },
  { name: 'disco --until-direct=false -c 2', args: ['-c', '2', '--until-direct=false'] },
  { name: 'tsmp', args: ['--tsmp', '-c', '3'] },
  { name: 'icmp', args: ['--icmp', '-c', '3'] },
  { name: 'peerapi', args: ['--peerapi', '-c', '3'] },
  { name: 'tsmp to the IPv6 address', args: ['--tsmp', '-c', '3'], v6: true },
  { name: 'icmp to the IPv6 address', args: ['--icmp', '-c', '3'], v6: true },
];

/** What of a PeerAPI answer must agree: status, key headers, and the text of an error (bodies of 2xx differ). */
function essence(a: ProbeAnswer): string {
  const h = KEY_HEADERS.map((k) => `${k}=${a.headers[k] ?? '-'}`).join(' ');
  const body = a.status >= 300 ? ` ${JSON.stringify(a.body)}` : '';
  return `${a.status}${a.error ? ` (${a.error})` : ''} ${h}${body}`;
}

// node -e: listens on UDP :9 for one datagram and prints it as hex (or "none" after ms).
const WOL_LISTEN_JS =
  "const s=require('dgram').createSocket({type:'udp4',reuseAddr:true});" +
  "const t=setTimeout(()=>{console.log('none');process.exit(0)},+process.argv[1]);" +
  "s.on('message',(m)=>{console.log(m.toString('hex'));clearTimeout(t);process.exit(0)});" +
  "s.bind(9,'0.0.0.0',()=>console.error('listening'))";
// node -e: a TCP connect to host:port, "connected" or what stopped it within ms.
const CONNECT_JS =
  "const s=require('net').connect({host:process.argv[1],port:+process.argv[2]});" +
  "const out=(w)=>{console.log(w);process.exit(0)};setTimeout(()=>out('timeout'),+process.argv[3]);" +
  "s.on('connect',()=>{s.destroy();out('connected')});s.on('error',(e)=>out(e.code))";

test('parity: a tailscaled peer gets the same answers from Trellis as from tailscaled', {
  timeout: 180_000,
}, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['c', 'd', 't', 'e'], { headscale: { policy: POLICY } });
    const [hc, hd, ht, he] = [tn.hosts.c, tn.hosts.d, tn.hosts.t, tn.hosts.e];
    if (!hc || !hd || !ht || !he) throw new Error('tailnet lab without hosts c, d, t, e');
    const hs = tn.headscale;
    const otherKey = await hs.createAuthKey(await hs.createUser('other'), { reusable: true, expiration: '1h' });
    const [tsC, tsD, tsE, tr] = await Promise.all([
      startTailscaled(hc, { name: 'c', env: TS_ENV }),
      startTailscaled(hd, { name: 'd', env: TS_ENV }),
      startTailscaled(he, { name: 'e', env: TS_ENV }),
      startTrellisNode(ht, { hostname: 'trellis-t', loginServer: hs.url, authKey: tn.authKey }),
    ]);
    await Promise.all([
      tsC.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-c' }),
      tsD.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-d' }),
      tsE.up({ loginServer: hs.url, authKey: otherKey, hostname: 'ts-e' }),
    ]);
    const [ipsD, ipsT] = [await tsD.ip(), await tr.ip()];
    const ip = { D: ipsD.v4, T: ipsT.v4 };
    const ip6 = { D: ipsD.v6, T: ipsT.v6 };
    const base = { D: await peerApiOf(tsC, ip.D), T: await peerApiOf(tsC, ip.T) };
    const seen: Record<string, Record<string, unknown>> = { D: {}, T: {} };
    const { claim, report } = claims(t, async () =>
      [
        `--- trellis daemon (tail):\n${tr.output().slice(-6_000)}`,
        `--- tailscaled c (tail):\n${tsC.output().slice(-4_000)}`,
      ].join('\n'),
    );
    const both = async <V>(what: string, fn: (k: 'D' | 'T') => Promise<V>): Promise<{ D: V; T: V }> => {
      const D = await fn('D');
      const T = await fn('T');
      seen.D[what] = D;
      seen.T[what] = T;
      return { D, T };
    };

    await claim('1. every tailscale ping type answers from T as from D', async (st) => {
      const bad: string[] = [];
      for (const p of PINGS) {
        const r = await both(`ping ${p.name}`, (k) => tailscalePing(tsC, (p.v6 ? ip6 : ip)[k], p.args));
        st.diagnostic(`ping ${p.name}: D ${r.D.line} | T ${r.T.line}`);
        if (!r.D.ok || !r.T.ok) bad.push(`${p.name}: D ${r.D.ok ? 'ok' : r.D.line}, T ${r.T.ok ? 'ok' : r.T.line}`);
      }
      // The TSMP pong carries the PeerAPI port the node advertises.
      const tsmp = seen.T['ping tsmp'] as { line: string };
      const port = /\(\S+, (\d+)\) via TSMP/.exec(tsmp.line)?.[1];
      if (port !== new URL(base.T).port) bad.push(`T's TSMP pong port ${port} is not its PeerAPI port ${base.T}`);
      assert.deepEqual(bad, []);
    });

    await claim('2. tailscale whois <ip> and <ip>:<port> name the node and its user, for T as for D', async () => {
      for (const suffix of ['', ':port']) {
        const r = await both(`whois${suffix}`, (k) =>
          tailscaleWhois(tsC, suffix ? `${ip[k]}:${new URL(base[k]).port}` : ip[k]),
        );
        assert.ok(r.D.ok && r.T.ok, `whois${suffix}: D ${r.D.text} | T ${r.T.text}`);
        assert.deepEqual([r.D.machine, r.T.machine], ['ts-d.tailnet.test', 'trellis-t.tailnet.test']);
        assert.equal(r.T.user, r.D.user);
      }
    });

    await claim('3. the PeerAPI: same status codes, error texts and key headers from T as from D', async (st) => {
      const a = await both('peerapi', (k) => probePeerApi(hc, base[k], REQUESTS));
      const bad: string[] = [];
      for (const [i, q] of REQUESTS.entries()) {
        const [d, tt] = [a.D[i], a.T[i]];
        if (!d || !tt) {
          bad.push(`${q.method} ${q.path}: no answer`);
          continue;
        }
        const what = `${q.method} ${q.path}${q.headers ? ` ${JSON.stringify(q.headers)}` : ''}`;
        st.diagnostic(`${what}: D ${essence(d)} | T ${essence(tt)}`);
        if (essence(d) !== essence(tt)) bad.push(`${what}:\n  D ${essence(d)}\n  T ${essence(tt)}`);
        if ('content-length' in d.headers !== 'content-length' in tt.headers) {
          bad.push(
            `${what}: Content-Length on D ${'content-length' in d.headers}, on T ${'content-length' in tt.headers}`,
          );
        }
      }
      // The PeerAPI on the IPv6 address answers as on the IPv4 one.
      const v6 = { D: await peerApiOf(tsC, ip6.D), T: await peerApiOf(tsC, ip6.T) };
      const six = await both('peerapi over IPv6', (k) => probePeerApi(hc, v6[k], V6_REQUESTS));
      for (const [i, q] of V6_REQUESTS.entries()) {
        const [d, tt] = [six.D[i], six.T[i]];
        st.diagnostic(`IPv6 ${q.method} ${q.path}: D ${d ? essence(d) : '-'} | T ${tt ? essence(tt) : '-'}`);
        if (!d || !tt || essence(d) !== essence(tt)) bad.push(`IPv6 ${q.method} ${q.path}`);
      }
      assert.deepEqual(bad, [], bad.join('\n'));
    });

    await claim('3b. the PeerAPI to a node of another user: the same refusals from T as from D', async (st) => {
      const baseE = { D: await peerApiOf(tsE, ip.D), T: await peerApiOf(tsE, ip.T) };
      const a = await both('peerapi from another user', (k) => probePeerApi(he, baseE[k], OTHER_USER_REQUESTS));
      const bad: string[] = [];
      for (const [i, q] of OTHER_USER_REQUESTS.entries()) {
        const [d, tt] = [a.D[i], a.T[i]];
        const what = `${q.method} ${q.path}`;
        st.diagnostic(`${what}: D ${d ? essence(d) : '-'} | T ${tt ? essence(tt) : '-'}`);
        if (!d || !tt || essence(d) !== essence(tt)) bad.push(`${what}: D ${d && essence(d)} | T ${tt && essence(tt)}`);
      }
      assert.deepEqual(bad, [], bad.join('\n'));
    });

    await claim('3c. h2c (HTTP/2 with prior knowledge): T answers as D does, and as over HTTP/1.1', async (st) => {
      const two = await both('peerapi over h2c', (k) => probePeerApiH2c(hc, base[k], H2C_REQUESTS));
      const one = await probePeerApi(hc, base.T, H2C_REQUESTS);
      const bad: string[] = [];
      for (const [i, q] of H2C_REQUESTS.entries()) {
        const [d, tt, t1] = [two.D[i], two.T[i], one[i]];
        const what = `h2c ${q.method} ${q.path}${q.headers ? ` ${JSON.stringify(q.headers)}` : ''}`;
        st.diagnostic(`${what}: D ${d ? essence(d) : '-'} | T ${tt ? essence(tt) : '-'}`);
        if (!d || !tt || !t1) {
          bad.push(`${what}: no answer`);
          continue;
        }
        if (d.protocol !== 'h2c' || tt.protocol !== 'h2c') bad.push(`${what}: spoke ${d.protocol} / ${tt.protocol}`);
        if (essence(d) !== essence(tt)) bad.push(`${what}:\n  D ${essence(d)}\n  T ${essence(tt)}`);
        if ('content-length' in d.headers !== 'content-length' in tt.headers) {
          bad.push(
            `${what}: Content-Length on D ${'content-length' in d.headers}, on T ${'content-length' in tt.headers}`,
          );
        }
        // One handler for both protocols: T's h2c answer is its HTTP/1.1 answer (a second PUT gets its own name).
        if (q.method !== 'PUT' && essence(tt) !== essence(t1)) {
          bad.push(`${what}: T over h2c ${essence(tt)}, over HTTP/1.1 ${essence(t1)}`);
        }
      }
      assert.deepEqual(bad, [], bad.join('\n'));
      const landed = await readFile(path.join(tr.stateDir, 'taildrop', 'h2c.txt'), 'utf8');
      assert.equal(landed, 'over h2c', "the h2c PUT landed in T's inbox");
    });

    await claim('4. Wake-on-LAN from T reaches its LAN with the magic packet for the MAC asked for', async () => {
      const listener = tn.net.spawn([process.execPath, '-e', WOL_LISTEN_JS, '10000'], { label: 'wol listener' });
      await waitUntil('the WoL listener', 5_000, async () => (listener.output().includes('listening') ? true : null));
      const [answer] = await probePeerApi(hc, base.T, [{ method: 'POST', path: `/v0/wol?mac=${WOL_MAC}` }]);
      assert.equal(answer?.status, 200, JSON.stringify(answer));
      const sent = JSON.parse(answer?.body ?? '{}') as { SentTo?: string[] | null };
      assert.ok((sent.SentTo ?? []).length > 0, `SentTo: ${answer?.body}`);
      await listener.exited;
      const got =
        listener
          .output()
          .trim()
          .split('\n')
          .find((l) => /^[0-9a-f]+$|^none$/.test(l)) ?? '';
      const mac = WOL_MAC.replaceAll(':', '');
      assert.equal(got, `${'ff'.repeat(6)}${mac.repeat(16)}`, 'the magic packet on the LAN');
    });

    await claim('5. tailscale status and file targets show T as they show D', async () => {
      const st = await tsC.status();
      type Peer = Record<string, unknown> & { TailscaleIPs?: string[] };
      const peers = Object.values(st.raw.Peer as Record<string, Peer>);
      const pick = (p: Peer | undefined) => ({
        OS: p?.OS,
        Online: p?.Online,
        direct: typeof p?.CurAddr === 'string' && p.CurAddr !== '',
        Relay: p?.Relay,
        PeerAPIURLs: Array.isArray(p?.PeerAPIURL) ? p.PeerAPIURL.length : 0,
        TaildropTarget: p?.TaildropTarget,
        NoFileSharingReason: p?.NoFileSharingReason,
        ExitNodeOption: p?.ExitNodeOption,
        Capabilities: p?.Capabilities ?? null,
        Tags: p?.Tags ?? null,
      });
      const r = await both('status', async (k) => pick(peers.find((p) => p.TailscaleIPs?.includes(ip[k]))));
      assert.deepEqual(r.T, r.D);
      const targets = await tsC.cli(['file', 'cp', '--targets'], 10_000);
      seen.D.targets = seen.T.targets = targets.stdout;
      assert.match(targets.stdout, /\bts-d\b/);
      assert.match(targets.stdout, /\btrellis-t\b/);
    });

    await claim('6. Hostinfo: T sends the fields D sends, but for the Go- and logging-specific ones', async () => {
      const r = await both('hostinfo', async (k) => {
        const w = await tsC.cli(['whois', '--json', ip[k]], 10_000);
        return (JSON.parse(w.stdout) as { Node: { Hostinfo: Record<string, unknown> } }).Node.Hostinfo;
      });
      // Deliberately not sent (docs/parity.md): Go's build facts, logtail's ID, tailscaled's environment probes.
      const deliberate = new Set(['BackendLogID', 'GoArch', 'GoArchVar', 'GoVersion', 'NoLogsNoSupport', 'Container']);
      deliberate.add('Desktop');
      const missing = Object.keys(r.D).filter((f) => !(f in r.T) && !deliberate.has(f));
      assert.deepEqual(missing, [], `Hostinfo fields D sends and T does not: ${missing.join(', ')}`);
      for (const f of ['OS', 'Machine', 'Distro', 'DistroVersion', 'DistroCodeName', 'Userspace']) {
        assert.equal(r.T[f], r.D[f], `Hostinfo.${f}`);
      }
      // NetInfo: the same facts, measured the same way on the same network (latencies differ, their keys do not).
      const ni = { D: r.D.NetInfo as Record<string, unknown>, T: r.T.NetInfo as Record<string, unknown> };
      const lacking = Object.keys(ni.D).filter((f) => !(f in ni.T));
      assert.deepEqual(lacking, [], `NetInfo fields D sends and T does not: ${lacking.join(', ')}`);
      for (const [f, v] of Object.entries(ni.D)) {
        if (f === 'DERPLatency') {
          assert.deepEqual(Object.keys(ni.T[f] as object).sort(), Object.keys(v as object).sort(), 'DERPLatency keys');
          for (const s of Object.values(ni.T[f] as Record<string, number>)) assert.ok(s > 0 && s < 5, `latency ${s} s`);
        } else assert.deepEqual(ni.T[f], v, `NetInfo.${f}`);
      }
    });

    await claim(
      `7. a TCP connection the ACLs refuse (port ${CLOSED_PORT}): C's tailscaled is told, by T as by D`,
      async () => {
        for (const k of ['D', 'T'] as const) {
          const r = await hc.run([process.execPath, '-e', CONNECT_JS, ip[k], String(CLOSED_PORT), '1000'], {
            timeoutMs: 10_000,
          });
          assert.equal(r.stdout.trim(), 'timeout', `${k}: the SYN is dropped`);
          const line = new RegExp(
            `open-conn-track: flow TCP \\S+ > ${ip[k].replaceAll('.', '\\.')}:${CLOSED_PORT} rejected due to acl`,
          );
          await waitUntil(`C's tailscaled logging ${k}'s refusal`, 5_000, async () =>
            line.test(tsC.output()) ? true : null,
          );
        }
      },
    );

    if (process.env.PARITY_DUMP) await writeFile(process.env.PARITY_DUMP, JSON.stringify(seen, null, 1));
    await report();
  });
});
