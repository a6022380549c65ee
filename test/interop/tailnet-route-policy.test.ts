// A Headscale policy that does not allow a user the internet, and allows only one port of one host behind a Trellis
// subnet router, is enforced by the Trellis router itself. Host a (tailscaled, user "guest") may reach b (Trellis,
// user "lab") and 192.0.2.10:8080 on b's LAN — nothing else. b advertises 192.0.2.0/24 and an exit node, both
// approved. Tailscale filters on the receiving side, so every verdict below about traffic through b is Trellis's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import {
  approveRoutes,
  dohRequest,
  FAR_HOST,
  LAN_HOST,
  LAN_NET,
  setPrefs,
  tcpProbe,
  whoServer,
  withRouterLab,
} from './lab/routes.ts';
import { claims, TS_ENV } from './lab/scenario.ts';
import { pingFrom, startTrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

// Headscale allocates from 100.64.0.1 in registration order: a first.
const IP_A = '100.64.0.1';
const IP_B = '100.64.0.2';
// One IPv6 host on the internet side too: Headscale hands a peer only the routes that overlap what the policy lets
// it reach, and tailscaled takes an exit node only with both default routes (a policy without any IPv6 destination
// leaves a with 0.0.0.0/0 alone: "not advertising an exit node"). The internet itself stays forbidden.
const POLICY = {
  hosts: { 'ts-a': `${IP_A}/32`, 'trellis-b': `${IP_B}/32`, nas: `${LAN_HOST}/32`, v6host: '2001:db8:77::1/128' },
  acls: [{ action: 'accept', src: ['ts-a'], dst: ['trellis-b:*', 'nas:8080', 'v6host:80'] }],
};
const EXIT = ['0.0.0.0/0', '::/0'];

test('a Headscale policy is enforced by the Trellis router', { timeout: 600_000 }, async (t) => {
  if (!requireTools(t, ['headscale', 'tailscaled', 'tailscale', 'ip', 'iptables', 'ping'])) return;
  await withRouterLab(t, POLICY, async ({ lab, tn, a, b, lan, web }) => {
    await b.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    const guestKey = await tn.headscale.createAuthKey(await tn.headscale.createUser('guest'), { expiration: '1h' });
    const ts = await startTailscaled(a, { name: 'a', env: TS_ENV });
    await ts.up({ loginServer: tn.headscale.url, authKey: guestKey, hostname: 'ts-a' });
    const tr = await startTrellisNode(b, { hostname: 'trellis-b', loginServer: tn.headscale.url, authKey: tn.authKey });
    assert.deepEqual([(await ts.ip()).v4, (await tr.ip()).v4], [IP_A, IP_B], 'the policy names these addresses');
    await setPrefs(tr.socket, { advertiseExitNode: true, advertiseRoutes: [LAN_NET] });
    await waitUntil("Headscale seeing b's routes", 20_000, async () => {
      const n = (await tn.headscale.nodes()).find((x) => x.name === 'trellis-b');
      return (n?.raw.available_routes ?? []).length === 3 ? true : null;
    });
    await approveRoutes(tn.headscale, 'trellis-b', [LAN_NET, ...EXIT]);
    const { claim: step, report } = claims(t, async () => `${lab.diagnostics()}\n${tr.output().slice(-8000)}`);
    const dropped = async () => (await tr.status()).counters?.filterDropped ?? 0;

    await step('1. the subnet route: 192.0.2.10:8080 yes, :8081 no — the SYN never reaches the host', async (st) => {
      const r = await ts.cli(['set', '--accept-routes'], 20_000);
      assert.equal(r.code, 0, r.stderr);
      const ok = await whoServer(lan, LAN_HOST, 8080);
      const no = await whoServer(lan, LAN_HOST, 8081);
      try {
        assert.equal(
          await waitUntil('a reaching 192.0.2.10:8080', 30_000, async () =>
            (await tcpProbe(a, LAN_HOST, 8080, 3_000)) === 'connected' ? 'connected' : null,
          ),
          'connected',
        );
        const before = await dropped();
        const refused = await tcpProbe(a, LAN_HOST, 8081, 5_000);
        const after = await dropped();
        st.diagnostic(`a → ${LAN_HOST}:8081: ${refused}; Trellis filter drops +${after - before}`);
        assert.equal(refused, 'timeout');
        assert.equal(no.output().match(/^from /m), null, 'the refused connection reached the host');
        assert.ok(after > before, "the drop is the Trellis router's");
        assert.equal(await tcpProbe(b, LAN_HOST, 8081), 'connected', 'control: :8081 answers b itself');
      } finally {
        await ok.stop();
        await no.stop();
      }
    });

    await step('2. no internet for a: through the exit node web stays unreachable; DoH says 403', async (st) => {
      const raw = (await ts.status()).raw as {
        Peer?: Record<string, { TailscaleIPs?: string[]; AllowedIPs?: string[]; PeerAPIURL?: string[] }>;
      };
      const peer = Object.values(raw.Peer ?? {}).find((p) => p.TailscaleIPs?.includes(IP_B));
      st.diagnostic(`a's view of b: AllowedIPs ${JSON.stringify(peer?.AllowedIPs)}`);
      const base = peer?.PeerAPIURL?.find((u) => u.includes(IP_B));
      assert.ok(base, "a knows b's PeerAPI");
      const q = dnsPacket.encode({
        type: 'query',
        id: 9,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name: 'x.example' }],
      });
      const doh = await dohRequest(a, `${base}/dns-query`, 'GET', q);
      st.diagnostic(`DoH from a (other user, no internet): ${doh.status} ${doh.body.toString()}`);
      assert.equal(doh.status, 403);
      assert.match(doh.body.toString(), /DNS access denied/);
      const set = await ts.cli(['set', `--exit-node=${IP_B}`], 20_000);
      st.diagnostic(`tailscale set --exit-node: exit ${set.code} ${set.stderr.trim()}`);
      if (set.code !== 0) {
        // Headscale kept the exit routes from a: nothing reaches b to enforce; say so, and check no route exists.
        assert.ok(!(peer?.AllowedIPs ?? []).includes('0.0.0.0/0'), 'b offered as exit node but refused');
        assert.equal(await pingFrom(a, FAR_HOST, { count: 1, deadlineS: 3 }), false);
        return;
      }
      const who = await whoServer(web, FAR_HOST, 8080);
      try {
        const before = await dropped();
        const probe = await tcpProbe(a, FAR_HOST, 8080, 5_000);
        const ping = await pingFrom(a, FAR_HOST, { count: 2, deadlineS: 4 });
        const after = await dropped();
        st.diagnostic(
          `a → web through b: tcp ${probe}, ping ${ping ? 'replies' : 'none'}; filter drops +${after - before}`,
        );
        assert.equal(probe, 'timeout');
        assert.equal(ping, false);
        assert.equal(who.output().match(/^from /m), null, 'web saw a connection');
        assert.ok(after - before >= 2, "the drops are the Trellis router's");
        assert.equal(await tcpProbe(b, FAR_HOST, 8080), 'connected', 'control: web answers b itself');
      } finally {
        await who.stop();
        await ts.cli(['set', '--exit-node='], 20_000);
      }
    });

    await report();
  });
});
