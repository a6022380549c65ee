// Two DERP regions (lab/derper.ts): Headscale's embedded DERP (region 999 on 203.0.113.1) and a standalone derper
// (region 900 on 203.0.113.5). Each site's router drops STUN to one region, so netcheck homes Trellis on 900 and
// tailscaled on 999, and drops UDP between the sites, so every packet is relayed. Trellis must then reach the
// tailscaled peer through the peer's home region (a second, on-demand DERP connection) and be reached through its
// own; tailscaled must learn Trellis's home from control (Hostinfo.NetInfo.PreferredDERP). Then the derper is
// killed and restarted: traffic must flow again within 10 s of it being back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NetcheckReport } from '../../main/engine/protocol.ts';
import { type Derper, derperRegion, startDerper } from './lab/derper.ts';
import type { NatLab } from './lab/nat.ts';
import { withLab } from './lab/netns.ts';
import {
  claims,
  delay,
  MB,
  pingBothWays,
  ready,
  type Side,
  setup,
  show,
  transferBothWays,
  trellisPath,
  trellisSide,
} from './lab/scenario.ts';
import { HEADSCALE_ADDR, pingFrom } from './lab/tailnet.ts';
import { requireTools } from './lab/tools.ts';

const DERPER_ADDR = '203.0.113.5';
const DERPER_REGION = 900;
const EMBEDDED_REGION = 999; // lab/headscale.ts: Headscale's own DERP region
const RECOVERY_S = 10;

/** iptables rules (inserted first in FORWARD) that drop UDP from this site to `to` (optionally one port). */
async function dropUdp(nl: NatLab, site: string, to: string, port?: number): Promise<void> {
  const rule = ['-I', 'FORWARD', '1', '-p', 'udp', '-d', to, ...(port ? ['--dport', String(port)] : []), '-j', 'DROP'];
  await nl.site(site).router.exec(['iptables', ...rule]);
}

test('derp regions: Trellis and tailscaled homed on different regions, relayed both ways; derper restart', {
  timeout: 90_000,
}, async (t) => {
  if (!ready(t) || !requireTools(t, ['derper'])) return;
  await withLab(t, async (lab) => {
    let derper: Derper | undefined;
    const { nl, trellis, tsd, dump } = await setup(
      lab,
      [
        { name: 'a', nat: 'easy' },
        { name: 'b', nat: 'easy' },
      ],
      'b',
      {
        headscale: { derpRegions: { [DERPER_REGION]: derperRegion(DERPER_REGION, 'lab900', DERPER_ADDR) } },
        beforeNodes: async (nl) => {
          await nl.net.exec(['ip', 'addr', 'add', `${DERPER_ADDR}/24`, 'dev', 'br0']);
          derper = await startDerper(nl.net, { addr: DERPER_ADDR });
          await dropUdp(nl, 'a', HEADSCALE_ADDR, 3478); // a: no STUN answer from 999 → home 900
          await dropUdp(nl, 'b', DERPER_ADDR, 3478); // b: no STUN answer from 900 → home 999
          await dropUdp(nl, 'a', nl.site('b').publicAddr); // and no UDP between the sites: relayed only
          await dropUdp(nl, 'b', nl.site('a').publicAddr);
        },
      },
    );
    const tr = trellis.a;
    const relay = derper as Derper | undefined; // assigned in beforeNodes
    if (!tr || !tsd || !relay) throw new Error('setup did not start both nodes and the derper');
    const [ipA, ipB] = [(await tr.ip()).v4, (await tsd.ip()).v4];
    const A = trellisSide(nl, trellis, 'a', ipA);
    const B: Side = { label: 'tailscaled b', host: nl.site('b').host, ip: ipB };
    const dumpAll = async () => `${await dump()}\n--- derper output (tail):\n${relay.output().slice(-4_000)}`;
    const { claim, report } = claims(t, dumpAll);
    const netcheck = async (): Promise<NetcheckReport> => {
      const r = await tr.cli(['netcheck', '--json'], 15_000);
      if (r.code !== 0) throw new Error(`trellis netcheck failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as NetcheckReport;
    };

    await claim('1. netcheck homes Trellis on the only region that answers its STUN', async (st) => {
      const n = await netcheck();
      st.diagnostic(`trellis netcheck: ${JSON.stringify(n)}`);
      assert.equal(n.preferredDERP, DERPER_REGION, 'preferred DERP');
      assert.equal(n.latencyMethod, 'stun');
      assert.ok(n.regionLatencyMs[DERPER_REGION] !== undefined, 'a latency for the derper region');
      assert.equal(n.regionLatencyMs[EMBEDDED_REGION], undefined, 'no latency for the region whose STUN is blocked');
    });
    await claim('2. tailscaled is homed on 999 and learns Trellis’s home (900) from control (≤ 10 s)', async (st) => {
      let relay = '';
      let self = '';
      for (let i = 0; i < 40; i++) {
        const s = await tsd.status();
        self = s.Self?.Relay ?? '';
        relay = s.peers.find((p) => p.TailscaleIPs.includes(ipA))?.Relay ?? '';
        if (relay === 'lab900' && self === 'headscale') break;
        await delay(250);
      }
      st.diagnostic(`tailscaled: own relay ${self}, Trellis's relay ${relay}`);
      assert.equal(self, 'headscale', 'tailscaled home region code');
      assert.equal(relay, 'lab900', 'Trellis home region as tailscaled sees it');
    });
    const pinged = await claim('3. ICMP both ways over the tailnet (≤ 20 s)', (st) => pingBothWays(st, A, B, 20));
    await claim('4. Trellis relays through the peer’s home region, keeping its own home open', async (st) => {
      const path = await trellisPath(tr, ipB);
      const n = await netcheck();
      st.diagnostic(`trellis a → b: ${show(path)}; DERP connections ${JSON.stringify(n.derpConnected)}`);
      assert.equal(path?.via, 'derp');
      assert.equal(path?.derpRegion, EMBEDDED_REGION, 'relayed through the peer’s home region');
      // The code `trellis status` prints, as tailscaled prints its own relay ("headscale" for the embedded one).
      assert.equal(path?.derpRegionCode, 'headscale', 'the region code from the DERP map');
      assert.deepEqual([...n.derpConnected].sort(), [DERPER_REGION, EMBEDDED_REGION]);
      const theirs = (await tsd.status()).peers.find((p) => p.TailscaleIPs.includes(ipA));
      assert.equal(theirs?.CurAddr, '', 'no direct path: UDP between the sites is dropped');
    });
    await claim('5. 2 MB over TCP each way, sha256 intact', async (st) => {
      if (!pinged) assert.fail('not attempted: no ICMP both ways in claim 3');
      await transferBothWays(st, A, B, 2 * MB, 20_000);
    });
    await claim(
      `6. derper (Trellis's home) killed and restarted: traffic within ${RECOVERY_S} s of it being back`,
      async (st) => {
        await relay.kill();
        await delay(3_000);
        await relay.start();
        const back = Date.now();
        const ok = await Promise.all([
          pingFrom(A.host, ipB, { count: 1, deadlineS: RECOVERY_S }),
          pingFrom(B.host, ipA, { count: 1, deadlineS: RECOVERY_S }),
        ]);
        st.diagnostic(`after the derper came back: a → b ${ok[0]}, b → a ${ok[1]}, ${Date.now() - back} ms`);
        assert.deepEqual(ok, [true, true], 'echo replies both ways after the restart');
      },
    );
    await report();
  });
});
