// Trellis against the official client on one LAN: host a runs tailscaled (v1.102.3, real TUN), host b runs a
// `trellis daemon` with a TUN; both log in to a real Headscale with the same pre-auth key. Each numbered subtest is
// one claim with a bounded wait, so a failing run says which layer is missing (control, data path, disco, bulk).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { StatusSnapshot } from '../../main/engine/protocol.ts';
import { withLab } from './lab/netns.ts';
import { claims } from './lab/scenario.ts';
import { buildTailnetLab, pingFrom, startTrellisNode, type TrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';
import { tcpTransfer } from './lab/traffic.ts';

const TS_HOST = 'ts-a';
const TRELLIS_HOST = 'trellis-b';
const BULK_BYTES = 20 * 1024 * 1024;

test('tailnet: tailscaled and a Trellis daemon (TUN) on one LAN', { timeout: 420_000 }, async (t) => {
  if (!requireTools(t, ['headscale', 'tailscaled', 'tailscale', 'ip', 'ping'])) return;
  if (!existsSync('/dev/net/tun')) {
    const msg = 'tailnet lab needs /dev/net/tun';
    if (process.env.CI === 'true') throw new Error(msg);
    t.skip(msg);
    return;
  }

  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b']);
    const { headscale: hs, authKey } = tn;
    const a = tn.hosts.a;
    const b = tn.hosts.b;
    if (!a || !b) throw new Error('tailnet lab has no hosts a and b');

    const ts = await startTailscaled(a, { name: 'a', env: { TS_DEBUG_USE_DERP_HTTP: '1' } });
    await ts.up({ loginServer: hs.url, authKey, hostname: TS_HOST });
    const tr: TrellisNode = await startTrellisNode(b, { hostname: TRELLIS_HOST, loginServer: hs.url, authKey });
    const ipA = await ts.ip();
    const ipB = await tr.ip();
    t.diagnostic(`tailscaled a: ${ipA.v4} ${ipA.v6}; trellis b: ${ipB.v4} ${ipB.v6}`);
    const { claim: step, report } = claims(t, async () => lab.diagnostics());

    await step('1. both nodes registered; each client lists the other', async (st) => {
      assert.match(ipB.v4, /^100\.\d+\.\d+\.\d+$/, `trellis self addresses: ${JSON.stringify(ipB)}`);
      // the three views are waited for together, so the report says which of them holds
      const claims: Array<[string, Promise<string>]> = [
        [
          'Headscale lists both nodes with their addresses',
          waitUntil('Headscale listing both nodes', 20_000, async () => {
            const list = await hs.nodes();
            const has = (name: string, ip: string) => list.some((n) => n.name === name && n.ipAddresses.includes(ip));
            return has(TS_HOST, ipA.v4) && has(TRELLIS_HOST, ipB.v4) ? `${list.length} nodes` : null;
          }),
        ],
        [
          `Trellis Running, lists ${TS_HOST} at ${ipA.v4}`,
          (async () => {
            const seesA = (s: StatusSnapshot) =>
              s.state === 'Running' && s.peers.some((p) => p.addresses.includes(ipA.v4));
            const s = await tr.waitFor(seesA, 30_000);
            assert.ok(seesA(s), `trellis status: ${JSON.stringify(s)}`);
            const peer = s.peers.find((p) => p.addresses.includes(ipA.v4));
            assert.equal(peer?.name, TS_HOST);
            if (ipA.v6) assert.ok(peer?.addresses.includes(ipA.v6), `peer ${JSON.stringify(peer)}`);
            return `${peer?.dnsName} online=${peer?.online}`;
          })(),
        ],
        [
          `tailscaled Running, lists ${TRELLIS_HOST} at ${ipB.v4}`,
          waitUntil(`tailscaled on a listing ${TRELLIS_HOST}`, 30_000, async () => {
            const s = await ts.status();
            const peer = s.peers.find((p) => p.TailscaleIPs.includes(ipB.v4) && p.HostName === TRELLIS_HOST);
            return s.BackendState === 'Running' && peer ? `${peer.DNSName} online=${peer.Online}` : null;
          }),
        ],
      ];
      const t0 = Date.now();
      const took = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
      const settled = await Promise.allSettled(claims.map(([, p]) => p.then((v) => `${v}, after ${took()}`)));
      const bad: string[] = [];
      settled.forEach((r, i) => {
        const what = claims[i]?.[0] ?? '';
        st.diagnostic(`${what}: ${r.status === 'fulfilled' ? `ok (${r.value})` : 'FAILED'}`);
        if (r.status === 'rejected') bad.push(`${what}: ${(r.reason as Error).message}`);
      });
      assert.deepEqual(bad, [], bad.join('\n'));
    });

    const reachV4 = new Set<string>(); // 'a → b' when ICMP initiated on a reached b and came back
    await step('2. ICMP over the tunnel both ways, IPv4 and IPv6', async (st) => {
      const probes = [
        { dir: 'b → a', ns: b, to: ipA.v4 },
        { dir: 'a → b', ns: a, to: ipB.v4 },
        { dir: 'b → a', ns: b, to: ipA.v6 },
        { dir: 'a → b', ns: a, to: ipB.v6 },
      ];
      // the first WireGuard handshake can race endpoint discovery; -w 20 keeps probing until the replies arrive
      const results = await Promise.all(
        probes.map(async (p) => {
          const t0 = Date.now();
          const ok = p.to !== '' && (await pingFrom(p.ns, p.to, { count: 3, deadlineS: 20 }));
          return { what: `${p.dir} ${p.to}`, ok, s: ((Date.now() - t0) / 1000).toFixed(1) };
        }),
      );
      for (const r of results) st.diagnostic(`ping ${r.what}: ${r.ok ? `ok in ${r.s} s` : 'FAILED'}`);
      for (const [i, r] of results.slice(0, 2).entries()) if (r.ok) reachV4.add(probes[i]?.dir ?? '');
      const bad = results.filter((r) => !r.ok).map((r) => r.what);
      assert.deepEqual(bad, [], `no echo replies within 20 s: ${bad.join(', ')}`);
    });

    await step('3. tailscale ping from a gets a direct pong from Trellis', async (st) => {
      const pong = await ts.ping(ipB.v4, { count: 10, timeoutS: 2 });
      st.diagnostic(
        `tailscale ping a → trellis: ${pong.ok ? `pong via ${pong.via} ${pong.endpoint ?? ''} in ${pong.latencyMs} ms` : 'no pong'}`,
      );
      assert.ok(pong.ok, `tailscale ping failed:\n${pong.output}`);
      assert.equal(pong.via, 'direct', `same LAN should go direct:\n${pong.output}`);
      assert.equal(pong.endpoint, `${tn.addr('b')}:${tr.port}`, pong.output);

      // Both sides agree on the path: Trellis reports tailscaled's LAN endpoint, tailscaled reports Trellis's.
      const mine = (await tr.status()).peers.find((p) => p.addresses.includes(ipA.v4));
      st.diagnostic(`trellis status: ${JSON.stringify(mine?.path)}`);
      assert.equal(mine?.path?.via, 'direct');
      assert.equal(mine?.path?.endpoint, `${tn.addr('a')}:41641`);
      assert.ok((mine?.path?.lastHandshake ?? 0) > 0, 'Trellis reports a WireGuard handshake');
      const theirs = (await ts.status()).peers.find((p) => p.TailscaleIPs.includes(ipB.v4));
      assert.equal(theirs?.CurAddr, `${tn.addr('b')}:${tr.port}`, 'tailscale status shows the same direct path');
    });

    await step('trellis ping and netcheck agree with what tailscaled sees', async (st) => {
      const pong = await tr.cli(['ping', ipA.v4, '--count', '3']);
      st.diagnostic(pong.stdout.trim());
      assert.equal(pong.code, 0, `${pong.stdout}${pong.stderr}`);
      assert.match(
        pong.stdout,
        new RegExp(
          `pong from ts-a \\(${ipA.v4.replaceAll('.', '\\.')}\\) via ${tn.addr('a').replaceAll('.', '\\.')}:41641 in`,
        ),
      );
      const nc = await tr.cli(['netcheck', '--json']);
      assert.equal(nc.code, 0, nc.stderr);
      const report = JSON.parse(nc.stdout) as { udp: boolean; publicEndpoints: string[]; derp?: { region: number } };
      st.diagnostic(nc.stdout.replace(/\s+/g, ' '));
      assert.equal(report.udp, true, 'STUN answered');
      assert.deepEqual(
        report.publicEndpoints,
        [`${tn.addr('b')}:${tr.port}`],
        'no NAT here: STUN sees our LAN address',
      );
      assert.equal(report.derp?.region, 999);
    });

    await step('4. 20 MB over TCP each way, sha256 intact', async (st) => {
      const runs = [
        { what: 'a → b', fromNs: a, toNs: b, toAddr: ipB.v4, port: 5001 },
        { what: 'b → a', fromNs: b, toNs: a, toAddr: ipA.v4, port: 5002 },
      ];
      const bad: string[] = [];
      for (const { what, ...o } of runs) {
        // the sender connects: without ICMP in that direction (step 2) the SYN would only run into the timeout
        if (!reachV4.has(what)) {
          bad.push(`${what}: not attempted, no IPv4 ping ${what} in step 2`);
          continue;
        }
        try {
          const r = await tcpTransfer({ ...o, bytes: BULK_BYTES, seed: o.port, timeoutMs: 60_000 });
          const mbps = (r.receivedBytes * 8) / 1e6 / Math.max(r.seconds, 1e-3);
          st.diagnostic(
            `tcp ${what}: ${r.receivedBytes} bytes in ${r.seconds.toFixed(2)} s (${mbps.toFixed(0)} Mbit/s)`,
          );
          if (r.receivedBytes !== BULK_BYTES) bad.push(`${what}: received ${r.receivedBytes} of ${BULK_BYTES} bytes`);
          else if (r.receivedSha256 !== r.sentSha256) bad.push(`${what}: sha256 differs`);
        } catch (e) {
          bad.push(`${what}: ${(e as Error).message.slice(0, 2_000)}`);
        }
      }
      assert.deepEqual(bad, [], bad.join('\n'));
      // Trellis sent b → a from TCP super-packets its TUN handed over (TSO), split into segments tailscaled took.
      const c = (await tr.status()).counters;
      st.diagnostic(`Trellis TUN: ${c?.tunSuperPackets} super-packets split, ${c?.tunOffloadDropped} dropped`);
      assert.ok((c?.tunSuperPackets ?? 0) > 0, 'the Linux TUN gave TCP super-packets (TSO) to split');
      assert.equal(c?.tunOffloadDropped, 0);
    });

    await report();
  });
});
