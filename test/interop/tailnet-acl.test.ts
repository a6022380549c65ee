// A restrictive Headscale policy between tailscaled (host a) and a Trellis daemon with a TUN (host b): the only rule
// towards b is "a's IPv4 → b's IPv4, TCP 5001". Tailscale filters on the receiver, so every verdict about a → b
// traffic below is taken by the Trellis engine's netmap PacketFilter (main/engine/filter/).
//
// ICMP semantics (reference: tailscale.com v1.102.3 wgengine/filter/filter.go, "icmp ok"): an echo request is
// accepted when any rule admits the source to that destination IP, whatever the rule's protocol or ports. So a ping
// to b's IPv4 (TCP 5001 open) is accepted, a ping to b's IPv6 (no rule at all) is dropped. One rule in the other
// direction (b → a:5003/tcp, never connected to) exists only to show tailscaled does the same as a receiver.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { type Namespace, withLab } from './lab/netns.ts';
import { claims } from './lab/scenario.ts';
import { buildTailnetLab, pingFrom, startTrellisNode, waitUntil } from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';
import { tcpTransfer } from './lab/traffic.ts';

const TS_HOST = 'ts-a';
const TRELLIS_HOST = 'trellis-b';
// Headscale allocates sequentially from 100.64.0.1 and a registers first; checked after registration.
const IP_A = '100.64.0.1';
const IP_B = '100.64.0.2';
const POLICY = {
  hosts: { [TS_HOST]: `${IP_A}/32`, [TRELLIS_HOST]: `${IP_B}/32` },
  acls: [
    { action: 'accept', proto: 'tcp', src: [TS_HOST], dst: [`${TRELLIS_HOST}:5001`] },
    { action: 'accept', proto: 'tcp', src: [TRELLIS_HOST], dst: [`${TS_HOST}:5003`] }, // calibration only
  ],
};
const BULK_BYTES = 5 * 1024 * 1024;
const CONNECT_MS = 5_000;
const LISTEN_MS = 120_000; // hard lifetime of the listener process

// node -e <src> host port ms → prints connected | refused | timeout | error <code>
const PROBE_JS =
  "const s=require('node:net').connect({host:process.argv[1],port:+process.argv[2]});" +
  "const out=(w)=>{console.log(w);process.exit(0)};setTimeout(()=>out('timeout'),+process.argv[3]);" +
  "s.on('connect',()=>{s.destroy();out('connected')});" +
  "s.on('error',(e)=>out(e.code==='ECONNREFUSED'?'refused':'error '+e.code))";
// node -e <src> host,host port,port ms → listens on every pair, prints "listening" then "accept <host> <port>"
const LISTEN_JS =
  "const net=require('node:net');const hs=process.argv[1].split(','),ps=process.argv[2].split(',');let n=0;" +
  "for(const h of hs)for(const p of ps){const s=net.createServer((c)=>{console.log('accept '+h+' '+p);c.destroy()});" +
  "s.on('error',(e)=>{console.log('listen error '+h+' '+p+' '+e.message);process.exit(1)});" +
  "s.listen({host:h,port:+p},()=>{if(++n===hs.length*ps.length)console.log('listening')})}" +
  'setTimeout(()=>process.exit(0),+process.argv[3])';

async function probe(ns: Namespace, host: string, port: number): Promise<string> {
  const r = await ns.run([process.execPath, '-e', PROBE_JS, host, String(port), String(CONNECT_MS)], {
    timeoutMs: CONNECT_MS + 10_000,
  });
  return r.code === 0 ? r.stdout.trim() : `probe exit ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 500)}`;
}

test('tailnet ACL: only TCP 5001 from tailscaled to Trellis gets in', { timeout: 300_000 }, async (t) => {
  if (!requireTools(t, ['headscale', 'tailscaled', 'tailscale', 'ip', 'ping'])) return;
  if (!existsSync('/dev/net/tun')) {
    if (process.env.CI === 'true') throw new Error('tailnet ACL lab needs /dev/net/tun');
    t.skip('tailnet ACL lab needs /dev/net/tun');
    return;
  }

  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b'], { headscale: { policy: POLICY } });
    const a = tn.hosts.a;
    const b = tn.hosts.b;
    if (!a || !b) throw new Error('tailnet lab has no hosts a and b');
    const ts = await startTailscaled(a, { name: 'a', env: { TS_DEBUG_USE_DERP_HTTP: '1' } });
    await ts.up({ loginServer: tn.headscale.url, authKey: tn.authKey, hostname: TS_HOST });
    const tr = await startTrellisNode(b, {
      hostname: TRELLIS_HOST,
      loginServer: tn.headscale.url,
      authKey: tn.authKey,
    });
    const ipA = await ts.ip();
    const ipB = await tr.ip();
    t.diagnostic(`tailscaled a: ${ipA.v4} ${ipA.v6}; trellis b: ${ipB.v4} ${ipB.v6}`);
    const { claim: step, report } = claims(t, async () => lab.diagnostics());

    await step('1. policy addresses as predicted; peers see each other; a tunnel path exists', async (st) => {
      assert.deepEqual([ipA.v4, ipB.v4], [IP_A, IP_B], 'the policy names the addresses Headscale was to allocate');
      assert.ok(ipB.v6, `trellis has no IPv6 tailnet address: ${JSON.stringify(ipB)}`);
      const s = await tr.waitFor(
        (x) => x.state === 'Running' && x.peers.some((p) => p.addresses.includes(IP_A)),
        30_000,
      );
      assert.ok(
        s.peers.some((p) => p.addresses.includes(IP_A)),
        `trellis does not list a: ${JSON.stringify(s)}`,
      );
      await waitUntil(`tailscaled listing ${TRELLIS_HOST}`, 30_000, async () =>
        (await ts.status()).peers.some((p) => p.TailscaleIPs.includes(IP_B)) ? true : null,
      );
      // disco ping: not subject to the packet filter, so it only brings up the path before the data checks
      const pong = await ts.ping(IP_B, { count: 10, timeoutS: 2 });
      st.diagnostic(`tailscale ping a → b: ${pong.ok ? `${pong.via} ${pong.endpoint ?? ''}` : 'no pong'}`);
      assert.ok(pong.ok, `no disco pong from trellis:\n${pong.output}`);
    });

    await step("2. a's netmap carries the restrictive, TCP-only filter Headscale derived", async (st) => {
      // Trellis has no netmap dump; a's own filter is the mirror image of b's (rule 2 of POLICY)
      const r = await ts.cli(['debug', 'netmap'], 15_000);
      assert.equal(r.code, 0, `tailscale debug netmap: ${r.stderr}`);
      const nm = JSON.parse(r.stdout) as { PacketFilterRules?: unknown };
      const rules = (nm.PacketFilterRules ?? []) as Array<{
        SrcIPs?: string[];
        DstPorts?: Array<{ IP?: string; Ports?: { First?: number; Last?: number } }>;
        IPProto?: number[];
      }>;
      st.diagnostic(`a's PacketFilterRules: ${JSON.stringify(rules)}`);
      const bare = (x: string | undefined) => (x ?? '').replace(/\/(32|128)$/, '');
      assert.equal(rules.length, 1, 'exactly one rule towards a');
      const [rule] = rules;
      assert.deepEqual(rule?.IPProto, [6], 'TCP only');
      assert.deepEqual((rule?.SrcIPs ?? []).map(bare), [IP_B]);
      const dsts = (rule?.DstPorts ?? []).map((d) => `${bare(d.IP)}:${d.Ports?.First}-${d.Ports?.Last}`);
      assert.deepEqual(dsts, [`${IP_A}:5003-5003`]);
    });

    await step('3. a → b TCP 5001: 5 MB arrive intact', async (st) => {
      const r = await tcpTransfer({
        fromNs: a,
        toNs: b,
        toAddr: IP_B,
        port: 5001,
        bytes: BULK_BYTES,
        timeoutMs: 60_000,
      });
      st.diagnostic(`a → b:5001 ${r.receivedBytes} bytes in ${r.seconds.toFixed(2)} s`);
      assert.equal(r.receivedBytes, BULK_BYTES);
      assert.equal(r.receivedSha256, r.sentSha256, 'sha256 differs');
    });

    await step('4. a → b: TCP 5002 and TCP to the IPv6 address time out (SYN dropped)', async (st) => {
      const addrs = [IP_B, ipB.v6];
      const lis = b.spawn([process.execPath, '-e', LISTEN_JS, addrs.join(','), '5001,5002', String(LISTEN_MS)], {
        label: 'b: listener 5001,5002',
      });
      try {
        assert.ok(await lis.waitForOutput(/^listening$/m, 10_000), `listener on b:\n${lis.output()}`);
        const cases: Array<[string, number, string]> = [
          [IP_B, 5001, 'connected'], // control: the probe does see an allowed connection
          [IP_B, 5002, 'timeout'],
          [ipB.v6, 5001, 'timeout'],
          [ipB.v6, 5002, 'timeout'],
        ];
        const got = await Promise.all(cases.map(([h, p]) => probe(a, h, p)));
        const bad: string[] = [];
        cases.forEach(([h, p, want], i) => {
          st.diagnostic(`connect a → [${h}]:${p}: ${got[i]}`);
          if (got[i] !== want) bad.push(`[${h}]:${p}: ${got[i]} (want ${want})`);
        });
        const accepts = lis.output().match(/^accept .*$/gm) ?? [];
        st.diagnostic(`listener on b accepted: ${JSON.stringify(accepts)}`);
        assert.deepEqual(bad, [], bad.join('\n'));
        assert.deepEqual(accepts, [`accept ${IP_B} 5001`], 'only the allowed connection reached the listener');
      } finally {
        await lis.stop();
      }
    });

    await step('5. ICMP echo: accepted only where a port is open (tailscaled as receiver agrees)', async (st) => {
      const probes = [
        { what: 'a → b IPv4 (trellis receives; 5001 open)', ns: a, to: IP_B, want: true },
        { what: 'a → b IPv6 (trellis receives; no rule)', ns: a, to: ipB.v6, want: false },
        { what: 'b → a IPv4 (tailscaled receives; 5003 open)', ns: b, to: IP_A, want: true },
        { what: 'b → a IPv6 (tailscaled receives; no rule)', ns: b, to: ipA.v6, want: false },
      ];
      const got = await Promise.all(probes.map((p) => pingFrom(p.ns, p.to, { count: 3, deadlineS: 5 })));
      const bad: string[] = [];
      probes.forEach((p, i) => {
        st.diagnostic(`ping -c 3 -w 5 ${p.what}: ${got[i] ? 'replies' : 'no replies'}`);
        if (got[i] !== p.want) bad.push(`${p.what}: ${got[i] ? 'replies' : 'no replies'}, want the opposite`);
      });
      assert.deepEqual(bad, [], bad.join('\n'));
    });

    await step('6. the drops happen in Trellis: WireGuard receives them, the TUN gets none', async (st) => {
      // a's WireGuard rx bytes against the TUN's rx packets, and the filter's own drop counter in status
      const sample = async () => {
        const status = await tr.status();
        const peer = status.peers.find((p) => p.addresses.includes(IP_A));
        const link = JSON.parse(await b.exec(['ip', '-s', '-j', 'link', 'show', 'dev', tr.tun])) as Array<{
          stats64?: { rx?: { packets?: number } };
        }>;
        return {
          wgRx: peer?.path?.rxBytes ?? Number.NaN,
          tunRx: link[0]?.stats64?.rx?.packets ?? Number.NaN,
          filtered: status.counters?.filterDropped ?? Number.NaN,
        };
      };
      const c0 = await sample(); // control: accepted echoes do show up as TUN rx packets
      const ok = await pingFrom(a, IP_B, { count: 5, deadlineS: 5 });
      const c1 = await sample();
      st.diagnostic(`control, 5 echoes to ${IP_B}: ${ok ? 'replies' : 'none'}; TUN rx +${c1.tunRx - c0.tunRx} packets`);
      assert.ok(ok && c1.tunRx - c0.tunRx >= 5, 'accepted echoes must be counted as TUN rx (control)');
      const before = await sample();
      const flood = ['ping', '-6', '-n', '-q', '-i', '0.2', '-s', '1000', '-c', '20', '-w', '6', ipB.v6];
      const r = await a.run(flood, { timeoutMs: 15_000 });
      const after = await sample();
      const wgRx = after.wgRx - before.wgRx;
      const tunRx = after.tunRx - before.tunRx;
      const filtered = after.filtered - before.filtered;
      st.diagnostic(
        `20 × 1000-byte echo to ${ipB.v6}: exit ${r.code}; wg rx +${wgRx} bytes, TUN rx +${tunRx} packets, ` +
          `filter drops +${filtered}`,
      );
      assert.notEqual(r.code, 0, `ping got replies:\n${r.stdout}`);
      assert.ok(wgRx >= 20 * 1000, `WireGuard from a received only ${wgRx} bytes: the echoes did not reach Trellis`);
      assert.ok(tunRx <= 2, `${tunRx} packets were written to ${tr.tun}: the filter let echo requests through`);
      assert.ok(filtered >= 18, `status counts ${filtered} filter drops for 20 refused echoes`);
    });

    await report();
  });
});
