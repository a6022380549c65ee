// Trellis offers an exit node and a subnet route; an official tailscaled uses them. Host a runs tailscaled, host b a
// Trellis daemon with a TUN, and behind b lie its LAN 192.0.2.0/24 (host "lan", which also routes on to
// 198.51.100.0/24 with host "web"). Headscale allows everything, the internet included, and an admin approves b's
// routes. Checked: what Trellis advertises and what status says control approved; the ip-forward warning; the
// iptables chains Trellis installs (and that they go exactly on down and after kill -9 + restart); tailscaled using b
// as exit node reaches web over IPv4 and IPv6, which sees b's address (SNAT), while b's own LANs stay cut out; b's
// PeerAPI answers DNS-over-HTTPS as tailscaled's does, and MagicDNS keeps answering on a; with --accept-routes (no exit
// node) tailscaled reaches the LAN behind b.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import {
  approveRoutes,
  dohRequest,
  FAR_HOST,
  FAR_HOST6,
  healthHas,
  LAN_HOST,
  LAN_HOST6,
  LAN_NET,
  netfilterText,
  ROUTER_LAN_ADDR,
  ROUTER_LAN_ADDR6,
  setPrefs,
  tcpProbe,
  whoServer,
  withRouterLab,
} from './lab/routes.ts';
import { claims, TS_ENV } from './lab/scenario.ts';
import { HEADSCALE_ADDR, pingFrom, startTrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

const DNS_SERVER = fileURLToPath(new URL('./lab/dns-server.ts', import.meta.url));
const OUTSIDE = { 'outside.example': '192.0.2.123' };
const POLICY = { acls: [{ action: 'accept', src: ['*'], dst: ['*:*', 'autogroup:internet:*'] }] };
const EXIT = ['0.0.0.0/0', '::/0'];

function aQuery(name: string, id: number): Uint8Array {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name }],
  });
}

function answerIPs(body: Uint8Array): string[] {
  const r = dnsPacket.decode(Buffer.from(body));
  return (r.answers ?? []).flatMap((x) => (x.type === 'A' ? [String(x.data)] : []));
}

test('Trellis as exit node and subnet router for tailscaled', { timeout: 600_000 }, async (t) => {
  if (!requireTools(t, ['headscale', 'tailscaled', 'tailscale', 'ip', 'iptables', 'iptables-save', 'ping', 'dig'])) {
    return;
  }
  await withRouterLab(t, POLICY, async ({ lab, tn, a, b, lan, web }) => {
    // b's own resolver (what its DoH answers with) is the lab DNS server on the LAN host.
    await b.writeEtc('resolv.conf', `nameserver ${LAN_HOST}\noptions timeout:1 attempts:1\n`);
    const dns = lan.spawn([process.execPath, '--import', 'tsx', DNS_SERVER, LAN_HOST, '53', JSON.stringify(OUTSIDE)], {
      label: 'lan: dns server',
    });
    assert.ok(await dns.waitForOutput(/^listening$/m, 10_000), `lab DNS server:\n${dns.output()}`);
    const baseline = await netfilterText(b);

    const ts = await startTailscaled(a, { name: 'a', env: TS_ENV, privateEtc: true }); // accept-dns later
    await ts.up({ loginServer: tn.headscale.url, authKey: tn.authKey, hostname: 'ts-a' });
    const tr = await startTrellisNode(b, { hostname: 'trellis-b', loginServer: tn.headscale.url, authKey: tn.authKey });
    const ipB = (await tr.ip()).v4;
    const { claim: step, report } = claims(t, async () => `${lab.diagnostics()}\n${tr.output().slice(-8000)}`);

    await step(
      '1. advertising: status and Headscale see the routes; forwarding off is a health warning',
      async (st) => {
        const prefs = await setPrefs(tr.socket, { advertiseExitNode: true, advertiseRoutes: ['192.0.2.7/24'] }).catch(
          (e: Error) => e,
        );
        assert.ok(
          prefs instanceof Error && /host bits/.test(prefs.message),
          `bad CIDR accepted: ${JSON.stringify(prefs)}`,
        );
        await setPrefs(tr.socket, { advertiseExitNode: true, advertiseRoutes: [LAN_NET] });
        const s = await tr.waitFor(
          (x) => (x.routes?.advertised.length ?? 0) === 3 && healthHas(x, 'forwarding is off'),
          20_000,
        );
        st.diagnostic(`status.routes: ${JSON.stringify(s.routes)}; health: ${JSON.stringify(s.health)}`);
        assert.deepEqual(s.routes, { advertised: [LAN_NET, ...EXIT], approved: [] });
        assert.ok(healthHas(s, 'net.ipv4.ip_forward'), `no ip-forward warning: ${JSON.stringify(s.health)}`);
        const hsNode = await waitUntil("Headscale listing b's available routes", 20_000, async () => {
          const n = (await tn.headscale.nodes()).find((x) => x.name === 'trellis-b');
          return n && (n.raw.available_routes ?? []).length === 3 ? n : null;
        });
        st.diagnostic(`Headscale: available ${JSON.stringify(hsNode.raw.available_routes)}`);
        assert.deepEqual([...(hsNode.raw.available_routes ?? [])].sort(), [LAN_NET, ...EXIT].sort());
      },
    );

    await step(
      '2. with forwarding on the warning goes; the chains are in place; Headscale serves the approval to peers',
      async (st) => {
        await b.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
        await approveRoutes(tn.headscale, 'trellis-b', [LAN_NET, ...EXIT]);
        st.diagnostic(`Headscale list-routes:\n${await tn.headscale.cli(['nodes', 'list-routes'])}`);
        // tailscaled on a sees b offering the routes (b's AllowedIPs in its netmap)
        await waitUntil("a's netmap showing b's approved routes", 30_000, async () => {
          const raw = (await ts.status()).raw as { Peer?: Record<string, { AllowedIPs?: string[] }> };
          const ips = Object.values(raw.Peer ?? {}).flatMap((p) => p.AllowedIPs ?? []);
          return ips.includes(LAN_NET) && ips.includes('0.0.0.0/0') ? true : null;
        });
        const s = await tr.waitFor((x) => !healthHas(x, 'forwarding is off'), 30_000);
        // Headscale v0.29 sends no self update on approval: b's own netmap shows it from the next full map (step 7).
        st.diagnostic(`status.routes: ${JSON.stringify(s.routes)}; health: ${JSON.stringify(s.health)}`);
        assert.ok(!healthHas(s, 'forwarding is off'), `warning stays: ${JSON.stringify(s.health)}`);
        const rules = await netfilterText(b);
        st.diagnostic(`b's netfilter:\n${rules}`);
        for (const want of [
          '4 filter -A FORWARD -j trellis-forward',
          `4 filter -A trellis-forward -i ${tr.tun} -j MARK --set-xmark 0x40000/0xff0000`,
          '4 filter -A trellis-forward -m mark --mark 0x40000/0xff0000 -j ACCEPT',
          `4 filter -A trellis-forward -s 100.64.0.0/10 -o ${tr.tun} -j DROP`,
          `4 filter -A trellis-forward -o ${tr.tun} -j ACCEPT`,
          '4 nat -A POSTROUTING -j trellis-postrouting',
          '4 nat -A trellis-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE',
          '6 filter -A FORWARD -j trellis-forward',
          `6 filter -A trellis-forward -i ${tr.tun} -j MARK --set-xmark 0x40000/0xff0000`,
          '6 nat -A trellis-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE',
        ]) {
          assert.ok(rules.includes(want), `missing: ${want}`);
        }
      },
    );

    await step("3. tailscaled uses b as exit node: web answers over IPv4 and IPv6 and sees b's address", async (st) => {
      const r = await ts.cli(['set', `--exit-node=${ipB}`], 20_000);
      assert.equal(r.code, 0, `tailscale set --exit-node: ${r.stderr}`);
      const who = await whoServer(web, FAR_HOST, 8080);
      try {
        assert.ok(await pingFrom(a, FAR_HOST, { count: 3, deadlineS: 30 }), 'a cannot ping web through b');
        assert.equal(await tcpProbe(a, FAR_HOST, 8080), 'connected');
        const from = who.output().match(/^from (.*)$/m)?.[1];
        st.diagnostic(`web saw the connection from ${from}`);
        assert.equal(from, ROUTER_LAN_ADDR, "SNAT: web must see b's LAN address");
      } finally {
        await who.stop();
      }
      // IPv6 leaves through b as well (::/0), masqueraded by b's ip6tables rule.
      const who6 = await whoServer(web, FAR_HOST6, 8080);
      try {
        assert.equal(await tcpProbe(a, FAR_HOST6, 8080, 20_000), 'connected', 'a cannot reach web over IPv6 through b');
        const from = who6.output().match(/^from (.*)$/m)?.[1];
        st.diagnostic(`web saw the IPv6 connection from ${from}`);
        assert.equal(from, ROUTER_LAN_ADDR6, "SNAT for IPv6: web must see b's LAN address");
      } finally {
        await who6.stop();
      }
    });

    await step('4. b\'s own tailnet LAN is cut out of the exit node ("guest Wi-Fi"); b itself answers', async (st) => {
      const before = (await tr.status()).counters?.filterDropped ?? 0;
      const toLan = await pingFrom(a, HEADSCALE_ADDR, { count: 2, deadlineS: 4 });
      const after = (await tr.status()).counters?.filterDropped ?? 0;
      st.diagnostic(
        `a → ${HEADSCALE_ADDR} through b: ${toLan ? 'replies' : 'none'}; b's filter drops +${after - before}`,
      );
      assert.equal(toLan, false, "b's directly connected LAN must not be reachable through the exit node");
      assert.ok(after - before >= 2, "the drops are Trellis's filter");
      // Its IPv6 LAN too: nothing listens there, so a refusal would mean the SYN got through; a drop times out.
      const toLan6 = await tcpProbe(a, LAN_HOST6, 8081, 3_000);
      const after6 = (await tr.status()).counters?.filterDropped ?? 0;
      st.diagnostic(`a → [${LAN_HOST6}]:8081 through b: ${toLan6}; b's filter drops +${after6 - after}`);
      assert.equal(toLan6, 'timeout', "b's IPv6 LAN must not be reachable through the exit node");
      assert.ok(after6 > after, "the IPv6 drops are Trellis's filter");
      assert.ok(await pingFrom(a, tn.addr('b'), { count: 2, deadlineS: 10 }), "b's own LAN address stays reachable");
    });

    await step("5. DNS-over-HTTPS on b's PeerAPI answers as tailscaled's; MagicDNS on a keeps working", async (st) => {
      const raw = (await ts.status()).raw as {
        Peer?: Record<string, { TailscaleIPs?: string[]; PeerAPIURL?: string[] }>;
      };
      const peer = Object.values(raw.Peer ?? {}).find((p) => p.TailscaleIPs?.includes(ipB));
      const base = peer?.PeerAPIURL?.find((u) => u.includes(ipB));
      assert.ok(base, `tailscaled knows no PeerAPI of b: ${JSON.stringify(peer)}`);
      for (const method of ['GET', 'POST'] as const) {
        const r = await dohRequest(a, `${base}/dns-query`, method, aQuery('outside.example', 7));
        st.diagnostic(`${method} ${base}/dns-query: ${r.status} ${r.type} ${JSON.stringify(answerIPs(r.body))}`);
        assert.equal(r.status, 200, r.raw);
        assert.equal(r.type, 'application/dns-message');
        assert.deepEqual(answerIPs(r.body), ['192.0.2.123']);
      }
      const bad = await dohRequest(a, `${base}/dns-query`, 'GET', new Uint8Array(0));
      assert.equal(bad.status, 400, `an empty ?dns= must be a 400: ${bad.raw}`);
      // tailscaled itself, with MagicDNS on and b as exit node, sends other names to b's DoH (it has no other
      // resolver: the lab DNS server is on b's LAN and Headscale names no global nameserver).
      const acc = await ts.cli(['set', '--accept-dns=true'], 20_000);
      assert.equal(acc.code, 0, `tailscale set --accept-dns=true: ${acc.stderr}`);
      const viaExit = await waitUntil("tailscaled's quad-100 resolving outside.example through b", 30_000, async () => {
        const r = await a.run(['dig', '@100.100.100.100', 'outside.example', 'A', '+short', '+tries=1', '+time=3'], {
          timeoutMs: 10_000,
        });
        return r.stdout.trim() === '192.0.2.123' ? r.stdout.trim() : null;
      });
      st.diagnostic(`dig @100.100.100.100 outside.example on a: ${viaExit}`);
      const q = await ts.cli(['dns', 'query', 'trellis-b.tailnet.test'], 15_000);
      st.diagnostic(`tailscale dns query trellis-b: ${q.stdout.trim()}`);
      assert.ok(q.stdout.includes(ipB), `MagicDNS on a no longer answers b's name:\n${q.stdout}${q.stderr}`);
    });

    await step('6. without the exit node, --accept-routes reaches the LAN behind b (SNAT)', async (st) => {
      const r = await ts.cli(['set', '--exit-node=', '--accept-routes'], 20_000);
      assert.equal(r.code, 0, `tailscale set: ${r.stderr}`);
      const who = await whoServer(lan, LAN_HOST, 8081);
      try {
        assert.equal(await tcpProbe(a, LAN_HOST, 8081, 20_000), 'connected');
        const from = who.output().match(/^from (.*)$/m)?.[1];
        st.diagnostic(`lan saw the connection from ${from}`);
        assert.equal(from, ROUTER_LAN_ADDR);
      } finally {
        await who.stop();
      }
      assert.equal(await pingFrom(a, FAR_HOST, { count: 1, deadlineS: 3 }), false, 'web is not on the subnet route');
    });

    await step('7. the rules go exactly on down, and after kill -9 + restart nothing is doubled', async (st) => {
      let r = await tr.cli(['down'], 20_000);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await netfilterText(b), baseline, 'down must leave the netfilter rules as they were');
      r = await tr.cli(['up', '--timeout', '60'], 75_000);
      assert.equal(r.code, 0, r.stderr);
      await waitUntil('the chains back after up', 30_000, async () =>
        (await netfilterText(b)).includes('-A FORWARD -j trellis-forward') ? true : null,
      );
      tr.process.signal('SIGKILL');
      await tr.process.exited;
      assert.ok((await netfilterText(b)).includes('trellis-forward'), 'a killed daemon leaves its rules (control)');
      await tr.restart();
      assert.match(tr.output(), /removing the rules a previous run left/, 'the restart removed the leftovers first');
      const after = await tr.waitFor((x) => x.state === 'Running' && x.routes?.approved.length === 3, 60_000);
      st.diagnostic(`after the restart, status.routes: ${JSON.stringify(after.routes)}`);
      assert.deepEqual(after.routes?.approved, [LAN_NET, ...EXIT], 'a full map carries the approval');
      // The IPv6 NAT jump goes in last (IPv4 filter, IPv4 nat, IPv6 filter, IPv6 nat): once it is there, all are.
      const text = await waitUntil('the chains after the restart', 30_000, async () => {
        const x = await netfilterText(b);
        return x.includes('6 nat -A POSTROUTING -j trellis-postrouting') ? x : null;
      });
      const jumps = text.split('\n').filter((l) => / -A (FORWARD|POSTROUTING) -j trellis-/.test(l));
      st.diagnostic(`after restart: ${jumps.length} jumps: ${JSON.stringify(jumps)}`);
      assert.equal(jumps.length, 4, 'one FORWARD and one POSTROUTING jump per family');
      assert.equal(text.split('\n').filter((l) => l.includes('-j MASQUERADE')).length, 2, 'one MASQUERADE per family');
      r = await tr.cli(['down'], 20_000);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await netfilterText(b), baseline, 'after the restart, down leaves the rules as they were');
    });

    await report();
  });
});
