// Trellis ↔ Trellis for exit nodes and subnet routes, all through the CLI a user types. Host b runs a Trellis daemon
// with `trellis set --advertise-exit-node --advertise-routes=192.0.2.0/24`; behind b lie its LAN (host "lan") and,
// beyond lan, the "internet" (host "web", which runs b's resolver). a's resolver is on a's own LAN. Headscale
// approves b's routes. Host a (strict rp_filter) runs a second Trellis daemon: with `--exit-node=trellis-b` web
// answers over IPv4 and IPv6 and sees b's address, the path to b stays direct, and a's MagicDNS resolves an outside
// name through b's DoH (none leaks to a's LAN resolver); clearing the exit node gives back a's rules and routes
// exactly; with `--accept-routes` a reaches the LAN behind b (SNAT); `down` on b removes its chains.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { StatusSnapshot } from '../../main/engine/protocol.ts';
import {
  approveRoutes,
  FAR_HOST,
  FAR_HOST6,
  LAN_HOST,
  LAN_NET,
  netfilterText,
  ROUTER_LAN_ADDR,
  ROUTER_LAN_ADDR6,
  routingState,
  tcpProbe,
  whoServer,
  withRouterLab,
} from './lab/routes.ts';
import { claims } from './lab/scenario.ts';
import { HEADSCALE_ADDR, pingFrom, startTrellisNode, type TrellisNode, waitUntil } from './lab/tailnet.ts';
import { requireTools } from './lab/tools.ts';

const DNS_SERVER = fileURLToPath(new URL('./lab/dns-server.ts', import.meta.url));
const POLICY = { acls: [{ action: 'accept', src: ['*'], dst: ['*:*', 'autogroup:internet:*'] }] };
const EXIT = ['0.0.0.0/0', '::/0'];
const B_NAME = 'trellis-b';
/** A name only the resolver on the internet host knows. */
const OUTSIDE_NAME = 'outside.example';
const OUTSIDE_ADDR = '198.51.100.80';
/** What the resolver on a's own LAN answers for it. */
const CAFE_ADDR = '203.0.113.80';
// node -e <src> server name → the first A answer's address, "no address" (e.g. SERVFAIL) or "no answer" (3 s)
const QUERY_JS =
  "const d=require('node:dgram').createSocket('udp4');const p=require('dns-packet');" +
  "d.on('message',(m)=>{const a=p.decode(m).answers.find((x)=>x.type==='A');console.log(a?a.data:'no address');process.exit(0)});" +
  "d.send(p.encode({type:'query',id:7,flags:256,questions:[{type:'A',name:process.argv[2]}]}),53,process.argv[1]);" +
  "setTimeout(()=>{console.log('no answer');process.exit(0)},3000)";

/** Runs `trellis <args>` on node and insists on exit 0; its stdout. */
async function trellis(node: TrellisNode, args: string[]): Promise<string> {
  const r = await node.cli(args, 30_000);
  assert.equal(r.code, 0, `trellis ${args.join(' ')} on ${node.hostname}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Connects from a to host:port until the who server in `who` logs a caller (bounded); that caller's address. */
async function callerSeen(tr: TrellisNode, host: string, port: number, output: () => string): Promise<string> {
  return waitUntil(`${host}:${port} answering a`, 20_000, async () => {
    const r = await tcpProbe(tr.ns, host, port, 3_000);
    const from = output().match(/^from (.*)$/m)?.[1];
    return r === 'connected' && from ? from : null;
  });
}

test('Trellis uses a Trellis exit node and subnet router', { timeout: 300_000 }, async (t) => {
  if (!requireTools(t, ['headscale', 'ip', 'iptables', 'iptables-save', 'ip6tables-save', 'ping'])) return;
  await withRouterLab(t, POLICY, async ({ lab, tn, a, b, lan, web }) => {
    await b.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    const dns = web.spawn(
      [
        process.execPath,
        '--import',
        'tsx',
        DNS_SERVER,
        FAR_HOST,
        '53',
        JSON.stringify({ [OUTSIDE_NAME]: OUTSIDE_ADDR }),
      ],
      { label: 'web: dns server' },
    );
    assert.ok(await dns.waitForOutput(/^listening$/m, 10_000), `lab DNS server:\n${dns.output()}`);
    // b's resolver is on the internet; a's is on its own LAN (a café's router, which answers the outside name with
    // an address of its own). Using b as exit node, a's MagicDNS must ask b (DoH on b's PeerAPI, as tailscaled
    // does), not the café: the answer and the address the internet's resolver sees tell which.
    await b.writeEtc('resolv.conf', `nameserver ${FAR_HOST}\noptions timeout:1 attempts:1\n`);
    await a.writeEtc('resolv.conf', `nameserver ${HEADSCALE_ADDR}\noptions timeout:1 attempts:1\n`);
    const cafe = tn.net.spawn(
      [
        process.execPath,
        '--import',
        'tsx',
        DNS_SERVER,
        HEADSCALE_ADDR,
        '53',
        JSON.stringify({ [OUTSIDE_NAME]: CAFE_ADDR }),
      ],
      { label: 'net: café dns server' },
    );
    assert.ok(await cafe.waitForOutput(/^listening$/m, 10_000), `café DNS server:\n${cafe.output()}`);
    const bBaseline = await netfilterText(b);
    // Strict reverse-path filtering on a, as some distributions set it: the direct path must survive the exit node.
    await a.exec(['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1']);

    const trB = await startTrellisNode(b, { hostname: B_NAME, loginServer: tn.headscale.url, authKey: tn.authKey });
    const trA = await startTrellisNode(a, {
      hostname: 'trellis-a',
      loginServer: tn.headscale.url,
      authKey: tn.authKey,
    });
    const ipB = (await trB.ip()).v4;
    const { claim: step, report } = claims(
      t,
      async () =>
        `${lab.diagnostics()}\n--- a:\n${trA.output().slice(-6000)}\n--- b:\n${trB.output().slice(-6000)}\n` +
        `${await routingState(a).catch(() => '')}`,
    );
    const offers = (s: StatusSnapshot) =>
      s.peers.some((p) => p.name === B_NAME && p.exitNodeOption && p.routes.includes(LAN_NET) && p.online === true);
    let connected = '';
    // An A query to quad-100, where a's resolv.conf points while connected: the first answer's address.
    const resolve = async () => {
      const r = await a.run([process.execPath, '-e', QUERY_JS, '100.100.100.100', OUTSIDE_NAME], { timeoutMs: 10_000 });
      return r.stdout.trim() || `exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`;
    };

    await step('1. b advertises with the CLI; Headscale approves; a sees the offer', async (st) => {
      await trellis(trB, ['set', '--advertise-exit-node', `--advertise-routes=${LAN_NET}`]);
      await waitUntil("Headscale listing b's routes", 20_000, async () => {
        const n = (await tn.headscale.nodes()).find((x) => x.name === B_NAME);
        return (n?.raw.available_routes ?? []).length === 3 ? true : null;
      });
      await approveRoutes(tn.headscale, B_NAME, [LAN_NET, ...EXIT]);
      const s = await trA.waitFor(offers, 30_000);
      assert.ok(offers(s), `a's peers: ${JSON.stringify(s.peers, null, 1)}`);
      const list = await trellis(trA, ['exit-node', 'list']);
      st.diagnostic(list);
      assert.match(list, new RegExp(`${ipB.replace(/\./g, '\\.')} +${B_NAME}\\.\\S+ +online`));
      assert.ok(await pingFrom(a, ipB, { count: 2, deadlineS: 20 }), 'the tunnel a → b works');
      connected = await routingState(a);
      assert.equal(await tcpProbe(a, FAR_HOST, 8080, 2_000), 'error ENETUNREACH', 'no route to web without b');
      assert.match(await readFile(path.join('/etc/netns', a.name, 'resolv.conf'), 'utf8'), /100\.100\.100\.100/);
      assert.equal(await resolve(), CAFE_ADDR, "without an exit node a's own resolver answers");
    });

    await step("2. a uses b as exit node: web answers over IPv4 and IPv6 and sees b's address", async (st) => {
      st.diagnostic((await trellis(trA, ['set', `--exit-node=${B_NAME}`])).trim());
      const s = await trA.waitFor((x) => x.exitNode?.active === true && x.exitNode.online === true, 10_000);
      assert.equal(s.exitNode?.name, B_NAME, JSON.stringify(s.exitNode));
      for (const family of ['-4', '-6']) {
        assert.match(await a.exec(['ip', family, 'rule']), /^5270:\s+from all lookup 52/m, `ip ${family} rule`);
        assert.match(await a.exec(['ip', family, 'route', 'show', 'table', '52']), /^default dev trellis0/m);
      }
      const who = await whoServer(web, FAR_HOST, 8080);
      try {
        const from = await callerSeen(trA, FAR_HOST, 8080, () => who.output());
        st.diagnostic(`web saw a's connection from ${from}`);
        assert.equal(from, ROUTER_LAN_ADDR, "SNAT: web must see b's address");
      } finally {
        await who.stop();
      }
      const who6 = await whoServer(web, FAR_HOST6, 8080);
      try {
        const from = await callerSeen(trA, FAR_HOST6, 8080, () => who6.output());
        st.diagnostic(`web saw a's IPv6 connection from ${from}`);
        assert.equal(from, ROUTER_LAN_ADDR6, "SNAT for IPv6: web must see b's LAN address");
      } finally {
        await who6.stop();
      }
      assert.ok(await pingFrom(a, FAR_HOST, { count: 2, deadlineS: 10 }), 'ICMP to web through b too');
      // The engine's own UDP socket bypasses the tunnel: the path to b stays direct.
      st.diagnostic((await trellis(trA, ['ping', B_NAME, '--count', '5'])).trim());
    });

    await step("3. a's MagicDNS resolves an outside name through b", async (st) => {
      const cafeQueries = () =>
        cafe
          .output()
          .split('\n')
          .filter((l) => l.startsWith('query ')).length;
      const cafeBefore = cafeQueries();
      let last = '';
      const answer = await waitUntil(`quad-100 on a resolving ${OUTSIDE_NAME}`, 15_000, async () => {
        last = await resolve();
        return last === OUTSIDE_ADDR ? last : null;
      }).catch((e: Error) => {
        throw new Error(`${e.message}; the last answer: ${last}`);
      });
      st.diagnostic(`quad-100 on a: ${OUTSIDE_NAME} → ${answer}`);
      assert.match(dns.output(), new RegExp(`query ${OUTSIDE_NAME} from ${ROUTER_LAN_ADDR.replace(/\./g, '\\.')}`));
      assert.equal(cafeQueries(), cafeBefore, "no query leaks to a's own resolver while b is the exit node");
    });

    await step("4. clearing the exit node gives back exactly a's rules and routes", async () => {
      await trellis(trA, ['set', '--exit-node=']);
      await trA.waitFor((x) => x.exitNode === undefined, 10_000);
      const after = await waitUntil("a's routing state of before", 10_000, async () => {
        const now = await routingState(a);
        return now === connected ? now : null;
      }).catch(async () => routingState(a));
      assert.equal(after, connected);
      assert.equal(await tcpProbe(a, FAR_HOST, 8080, 2_000), 'error ENETUNREACH', 'web out of reach again');
      assert.equal(await tcpProbe(a, FAR_HOST6, 8080, 2_000), 'error ENETUNREACH', 'over IPv6 as well');
      assert.equal(await resolve(), CAFE_ADDR, "a's own resolver answers again");
    });

    await step('5. --accept-routes: a reaches the LAN behind b, which sees b’s address (SNAT)', async (st) => {
      await trellis(trA, ['set', '--accept-routes=true']);
      const who = await whoServer(lan, LAN_HOST, 8081);
      try {
        const from = await callerSeen(trA, LAN_HOST, 8081, () => who.output());
        st.diagnostic(`lan saw a's connection from ${from}`);
        assert.equal(from, ROUTER_LAN_ADDR);
      } finally {
        await who.stop();
      }
      assert.equal(await tcpProbe(a, FAR_HOST, 8080, 2_000), 'error ENETUNREACH', 'web is not on the subnet route');
      await trellis(trA, ['set', '--accept-routes=false']);
      const after = await waitUntil("a's routing state of before", 10_000, async () => {
        const now = await routingState(a);
        return now === connected ? now : null;
      }).catch(async () => routingState(a));
      assert.equal(after, connected);
    });

    await step('6. down on b removes its forwarding chains', async (st) => {
      const up = await netfilterText(b);
      for (const want of ['4 filter -A FORWARD -j trellis-forward', '6 filter -A FORWARD -j trellis-forward']) {
        assert.ok(up.includes(want), `while offering, b's netfilter lacks: ${want}`);
      }
      assert.match(up, /^4 nat -A trellis-postrouting .*-j MASQUERADE$/m);
      await trellis(trB, ['down']);
      const after = await netfilterText(b);
      st.diagnostic(`b's netfilter after down:\n${after}`);
      assert.equal(after, bBaseline, 'down must leave the netfilter rules as they were');
    });

    await report();
  });
});
