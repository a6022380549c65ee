// Proves the tailscaled lab helper against the real client (v1.102.3 from test/setup/prereqs.sh): two official
// tailscaled with real TUNs on one LAN register with a real Headscale, see each other, and pass traffic.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { startHeadscale } from '../interop/lab/headscale.ts';
import { type Lab, type Namespace, withLab } from '../interop/lab/netns.ts';
import { execCommand } from '../interop/lab/proc.ts';
import {
  goDurationMs,
  parsePing,
  parseStatus,
  startTailscaled,
  TAILSCALE_VERSION,
  tailscaleBinary,
} from '../interop/lab/tailscaled.ts';
import { requireTools } from '../interop/lab/tools.ts';

test('parsePing reads direct, DERP, peer-relay and missing pongs', () => {
  const direct = parsePing(
    'pong from b (100.64.0.2, 38521) via DERP(headscale) in 21ms\npong from b (100.64.0.2, 38521) via 203.0.113.3:41641 in 1.5ms\n',
  );
  assert.deepEqual(direct, { ok: true, via: 'direct', endpoint: '203.0.113.3:41641', latencyMs: 1.5 });
  assert.deepEqual(parsePing('pong from b (100.64.0.2) via [2001:db8::3]:41641 in 0s\n'), {
    ok: true,
    via: 'direct',
    endpoint: '[2001:db8::3]:41641',
    latencyMs: 0,
  });
  assert.deepEqual(parsePing('pong from b (100.64.0.2) via DERP(headscale) in 250µs\n'), {
    ok: true,
    via: 'derp',
    latencyMs: 0.25,
  });
  assert.equal(parsePing('pong from b (100.64.0.2) via peer-relay(192.0.2.9:7777:vni:3) in 3ms\n').via, 'unknown');
  assert.deepEqual(parsePing('ping "100.64.0.2" timed out\nno reply\n'), { ok: false, via: 'unknown' });
  assert.equal(goDurationMs('1m2.5s'), 62_500);
  assert.ok(Number.isNaN(goDurationMs('soon')));
});

test('parseStatus keeps the typed subset and tolerates a null Peer', () => {
  const st = parseStatus(
    JSON.stringify({
      BackendState: 'Running',
      Self: { HostName: 'a', DNSName: 'a.tailnet.test.', TailscaleIPs: ['100.64.0.1'], Online: true },
      Peer: {
        'nodekey:bb': {
          HostName: 'b',
          TailscaleIPs: ['100.64.0.2', 'fd7a:115c:a1e0::2'],
          CurAddr: '203.0.113.3:41641',
          Relay: 'headscale',
          RxBytes: 10,
          LastHandshake: '0001-01-01T00:00:00Z',
        },
      },
    }),
  );
  assert.equal(st.BackendState, 'Running');
  assert.equal(st.Self?.DNSName, 'a.tailnet.test.');
  assert.equal(st.peers.length, 1);
  assert.equal(st.Peer['nodekey:bb']?.CurAddr, '203.0.113.3:41641');
  assert.equal(st.peers[0]?.Online, false);
  assert.equal(st.peers[0]?.TxBytes, 0);
  assert.deepEqual(parseStatus('{"BackendState":"NeedsLogin","Self":null,"Peer":null}').peers, []);
});

/** net: a bridge with 203.0.113.1/24 (Headscale); a and b on veths into it, .2 and .3: one LAN, no default route. */
async function lan(lab: Lab): Promise<{ net: Namespace; a: Namespace; b: Namespace }> {
  const net = await lab.addNamespace('net');
  await net.exec(['ip', 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  await net.exec(['ip', 'addr', 'add', '203.0.113.1/24', 'dev', 'br0']);
  await net.exec(['ip', 'link', 'set', 'br0', 'up']);
  const hosts: Namespace[] = [];
  for (const [short, addr] of [
    ['a', '203.0.113.2/24'],
    ['b', '203.0.113.3/24'],
  ] as const) {
    const ns = await lab.addNamespace(short);
    const { ifB } = await lab.linkVeth(ns, net, { a: addr });
    await net.exec(['ip', 'link', 'set', ifB, 'master', 'br0']);
    hosts.push(ns);
  }
  const [a, b] = hosts as [Namespace, Namespace];
  for (const ns of [a, b]) await ns.exec(['ping', '-c', '1', '-W', '2', '203.0.113.1']);
  return { net, a, b };
}

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const v = await probe().catch((e: Error) => {
      last = e.message;
      return null;
    });
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
}

test('tailscaled: two official clients on one LAN join Headscale and pass traffic', { timeout: 90_000 }, async (t) => {
  if (!requireTools(t, ['tailscaled', 'tailscale', 'headscale', 'ping', 'iptables'])) return;
  if (!existsSync('/dev/net/tun')) {
    const msg = 'tailscaled lab needs /dev/net/tun';
    if (process.env.CI === 'true') throw new Error(msg);
    t.skip(msg);
    return;
  }
  // a go-install build says "1.102.3-ERR-BuildInfo" (no release ldflags)
  const version = (await execCommand(tailscaleBinary() ?? 'tailscale', ['version'])).split('\n')[0] ?? '';
  assert.equal(`v${version.split('-')[0]}`, TAILSCALE_VERSION, `tailscale version: ${version}`);

  await withLab(t, async (lab) => {
    const { net, a, b } = await lan(lab);
    const hs = await startHeadscale({ ns: net, listenAddr: '203.0.113.1:8080' });
    const user = await hs.createUser('lab');
    const authKey = await hs.createAuthKey(user, { reusable: true, expiration: '1h' });
    const env = { TS_DEBUG_USE_DERP_HTTP: '1' };
    const [tsA, tsB] = await Promise.all([
      startTailscaled(a, { name: 'a', env }),
      startTailscaled(b, { name: 'b', env }),
    ]);
    try {
      assert.match((await tsA.status()).BackendState, /^(NeedsLogin|NoState|Stopped)$/);
      await Promise.all([
        tsA.up({ loginServer: hs.url, authKey, hostname: 'ts-a' }),
        tsB.up({ loginServer: hs.url, authKey, hostname: 'ts-b' }),
      ]);
      const [ipA, ipB] = await Promise.all([tsA.ip(), tsB.ip()]);
      assert.match(ipA.v4, /^100\.64\.\d+\.\d+$/);
      assert.match(ipB.v6, /^fd7a:115c:a1e0:/);
      assert.notEqual(ipA.v4, ipB.v4);

      for (const [self, peerName, peerIp] of [
        [tsA, 'ts-b', ipB.v4],
        [tsB, 'ts-a', ipA.v4],
      ] as const) {
        const st = await waitFor(`${self.name} Running and seeing ${peerName}`, 30_000, async () => {
          const s = await self.status();
          return s.BackendState === 'Running' && s.peers.some((p) => p.HostName === peerName) ? s : null;
        });
        assert.equal(st.Self?.HostName, self.name === 'a' ? 'ts-a' : 'ts-b');
        const peer = st.peers.find((p) => p.HostName === peerName);
        assert.ok(peer?.TailscaleIPs.includes(peerIp), `peer ${JSON.stringify(peer)}`);
        assert.match(peer?.DNSName ?? '', /\.tailnet\.test\.$/);
      }

      const pong = await tsA.ping(ipB.v4, { count: 10, timeoutS: 2 });
      assert.ok(pong.ok, `tailscale ping failed:\n${pong.output}`);
      console.log(`tailscale ping a→b: via ${pong.via} ${pong.endpoint ?? ''} in ${pong.latencyMs} ms`);
      assert.equal(pong.via, 'direct', `same LAN should go direct:\n${pong.output}`);
      assert.match(pong.endpoint ?? '', /^203\.0\.113\.3:41641$/);

      // the first WireGuard handshake can race the peer learning our endpoint (then wg retries after 5 s)
      const ping3 = (ip: string) => a.run(['ping', '-c', '3', '-i', '0.2', '-w', '20', ip], { timeoutMs: 25_000 });
      const icmp = await ping3(ipB.v4);
      assert.equal(icmp.code, 0, `ping over the TUN:\n${icmp.stdout}${icmp.stderr}`);
      const route = await a.exec(['ip', 'route', 'get', ipB.v4]);
      assert.match(route, /dev ts-a/, route);

      const peerB = (await tsA.status()).peers.find((p) => p.HostName === 'ts-b');
      assert.ok(peerB && peerB.TxBytes > 0 && peerB.RxBytes > 0, `counters ${JSON.stringify(peerB)}`);
      assert.equal(peerB?.CurAddr, '203.0.113.3:41641');
      assert.notEqual(peerB?.LastHandshake, '0001-01-01T00:00:00Z');

      // DERP: drop UDP between a and b (STUN to .1 and DERP, TCP to .1:8080, stay open); once the direct path's
      // trust (6.5 s) lapses, disco and WireGuard go through Headscale's embedded DERP over plain HTTP
      await a.exec(['iptables', '-I', 'OUTPUT', '1', '-p', 'udp', '-d', '203.0.113.3', '-j', 'DROP']);
      await a.exec(['iptables', '-I', 'INPUT', '1', '-p', 'udp', '-s', '203.0.113.3', '-j', 'DROP']);
      const relayed = await tsA.ping(ipB.v4, { count: 8, timeoutS: 2 });
      console.log(`tailscale ping a→b, UDP blocked: via ${relayed.via} in ${relayed.latencyMs} ms`);
      assert.ok(relayed.ok && relayed.via === 'derp', `expected a pong via DERP:\n${relayed.output}`);
      const icmpDerp = await ping3(ipB.v4);
      assert.equal(icmpDerp.code, 0, `ping over the TUN via DERP:\n${icmpDerp.stdout}${icmpDerp.stderr}`);
      assert.equal((await tsA.status()).peers.find((p) => p.HostName === 'ts-b')?.CurAddr, '');

      // No restart check here: a restarted official tailscaled may insist on an HTTPS dial to port 443 for a
      // control host outside the private ranges ("forcing port 443 dial due to recent noise dial", tailscale
      // #14646), and the lab's 203.0.113.1 is such a host: that flakes on tailscaled's side, not ours.
    } catch (err) {
      console.error(`headscale output (tail):\n${hs.output().slice(-4_000)}`);
      throw err;
    } finally {
      await Promise.all([tsA.stop(), tsB.stop()]);
    }
    assert.ok(!existsSync(tsA.dir) && !existsSync(tsB.dir), 'tailscaled temp dirs left behind');
  });
});
