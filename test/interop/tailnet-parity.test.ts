// Official-node parity (docs/parity.md): tailscaled node C asks the same questions of tailscaled node D and of
// Trellis node T — every `tailscale ping` type, `tailscale whois`, the PeerAPI's endpoints — and the answers must
// agree in what matters: ping success per type, the whois result, status codes (and the key headers).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { withLab } from './lab/netns.ts';
import { type ProbeRequest, probePeerApi, tailscalePing, tailscaleWhois } from './lab/peer-probe.ts';
import { peerApiOf, ready, TS_ENV } from './lab/scenario.ts';
import { buildTailnetLab, startTrellisNode } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';

const REQUESTS: ProbeRequest[] = [
  { method: 'GET', path: '/' },
  { method: 'HEAD', path: '/' },
  { method: 'OPTIONS', path: '/' },
  { method: 'POST', path: '/', body: 'x' },
  { method: 'GET', path: '/?q=1' },
  { method: 'GET', path: '/v0/put/' },
  { method: 'GET', path: '/v0/put/none.txt' },
  { method: 'PUT', path: '/v0/put/parity.txt', body: 'parity' },
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
  { method: 'GET', path: '/v0/connector/transit-ip' },
  { method: 'GET', path: '/v0/drive/' },
  { method: 'GET', path: '/nope' },
  { method: 'GET', path: '/dns-query?q=ts-c.tailnet.test' },
  { method: 'GET', path: '/', headers: { origin: 'http://evil.example' } },
  { method: 'GET', path: '/', headers: { referer: 'http://evil.example/' } },
  { method: 'GET', path: '/', headers: { host: 'evil.example:80' } },
  { method: 'GET', path: '/', headers: { host: 'peer' } },
  { method: 'GET', path: '/', headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/1' } },
];

const PINGS: Array<{ name: string; args: string[] }> = [
  { name: 'disco', args: ['-c', '3'] },
  { name: 'disco --until-direct=false', args: ['-c', '2', '--until-direct=false'] },
  { name: 'tsmp', args: ['--tsmp'] },
  { name: 'icmp', args: ['--icmp'] },
  { name: 'peerapi', args: ['--peerapi'] },
];

test('parity: a tailscaled peer sees Trellis answer as tailscaled does', { timeout: 180_000 }, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['c', 'd', 't']);
    const [hc, hd, ht] = [tn.hosts.c, tn.hosts.d, tn.hosts.t];
    if (!hc || !hd || !ht) throw new Error('tailnet lab without hosts c, d, t');
    const hs = tn.headscale;
    const [tsC, tsD, tr] = await Promise.all([
      startTailscaled(hc, { name: 'c', env: TS_ENV }),
      startTailscaled(hd, { name: 'd', env: TS_ENV }),
      startTrellisNode(ht, { hostname: 'trellis-t', loginServer: hs.url, authKey: tn.authKey }),
    ]);
    await Promise.all([
      tsC.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-c' }),
      tsD.up({ loginServer: hs.url, authKey: tn.authKey, hostname: 'ts-d' }),
    ]);
    const ipD = (await tsD.ip()).v4;
    const ipT = (await tr.ip()).v4;
    const targets = { D: ipD, T: ipT };
    const seen: Record<string, unknown> = {};
    for (const [k, ip] of Object.entries(targets)) {
      const base = await peerApiOf(tsC, ip);
      const pings: Record<string, unknown> = {};
      for (const p of PINGS) pings[p.name] = await tailscalePing(tsC, ip, p.args);
      const whois = await tailscaleWhois(tsC, ip);
      const whoisPort = await tailscaleWhois(tsC, `${ip}:${new URL(base).port}`);
      const answers = await probePeerApi(hc, base, REQUESTS);
      const st = await tsC.status();
      const peer = Object.values(st.raw.Peer as Record<string, { TailscaleIPs?: string[] }>).find((x) =>
        x.TailscaleIPs?.includes(ip),
      );
      const wj = await tsC.cli(['whois', '--json', ip], 10_000);
      seen[k] = { base, pings, whois, whoisPort, answers, peer, whoisJson: JSON.parse(wj.stdout) };
    }
    if (process.env.PARITY_DUMP) await writeFile(process.env.PARITY_DUMP, JSON.stringify(seen, null, 1));
    assert.ok(true);
  });
});
