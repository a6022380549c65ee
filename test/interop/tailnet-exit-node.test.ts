// Trellis uses a tailscaled exit node and subnet router. Host a runs tailscaled with --advertise-exit-node and
// --advertise-routes of a LAN behind it (10.77.0.0/24, host "sub"); behind a also sits the "internet"
// (198.51.100.0/24 and 2001:db8:b::/64, host "inet"), reachable from nowhere else. Headscale (policy with
// autogroup:internet) approves the routes. Host b runs `trellis daemon`, chooses a as exit node with `trellis set`,
// and the claims check what a user would: the internet answers over IPv4 and IPv6 and sees a's address; control,
// DERP/STUN and the peer keep working; allow-LAN-access keeps the LAN direct; clearing gives back exactly the rules
// and routes of before; accept-routes reaches the subnet; a daemon killed with -9 cleans up when it starts again.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { StatusSnapshot } from '../../main/engine/protocol.ts';
import { type Namespace, withLab } from './lab/netns.ts';
import { delay } from './lab/proc.ts';
import { buildInternetBehind, INTERNET } from './lab/routes.ts';
import { claims } from './lab/scenario.ts';
import {
  activeProfileDir,
  buildTailnetLab,
  HEADSCALE_ADDR,
  pingFrom,
  startTrellisNode,
  waitUntil,
} from './lab/tailnet.ts';
import { startTailscaled } from './lab/tailscaled.ts';
import { requireTools } from './lab/tools.ts';

const TS_HOST = 'ts-exit';
const TRELLIS_HOST = 'trellis-b';
const INET_ADDR = INTERNET.inet;
const INET_ADDR6 = INTERNET.inet6;
/** The exit node's addresses towards its ISP: what the internet host sees. */
const A_WAN = INTERNET.wan;
const A_WAN6 = INTERNET.wan6;
const SUBNET = '10.77.0.0/24';
const SUB_ADDR = '10.77.0.10';
const SUB_GW = '10.77.0.1';
/** A LAN that appears on b while it uses the exit node. */
const LAN2 = '10.78.0.0/24';
const LAN2_GW = '10.78.0.1';
const LAN2_HOST = '10.78.0.10';
const WHOAMI_PORT = 8099;
/** A name only the internet's resolver (on the internet host) knows. */
const WEB_NAME = 'web.example';
const WEB_ADDR = '198.51.100.80';
const DNS_SERVER = fileURLToPath(new URL('./lab/dns-server.ts', import.meta.url));
// node -e <src> server name → the first A answer's address, "no address" (e.g. SERVFAIL) or "no answer" (3 s)
const QUERY_JS =
  "const d=require('node:dgram').createSocket('udp4');const p=require('dns-packet');" +
  "d.on('message',(m)=>{const a=p.decode(m).answers.find((x)=>x.type==='A');console.log(a?a.data:'no address');process.exit(0)});" +
  "d.send(p.encode({type:'query',id:7,flags:256,questions:[{type:'A',name:process.argv[2]}]}),53,process.argv[1]);" +
  "setTimeout(()=>{console.log('no answer');process.exit(0)},3000)";
const POLICY = {
  acls: [{ action: 'accept', src: ['*'], dst: ['*:*', 'autogroup:internet:*'] }],
};

// node -e <src> port → a TCP server that writes each caller's address and closes
const WHOAMI_JS =
  "const s=require('node:net').createServer((c)=>c.end(c.remoteAddress.replace(/^::ffff:/,'')+'\\n'));" +
  "s.listen(+process.argv[1],()=>console.log('listening'));setTimeout(()=>process.exit(0),600000)";
// node -e <src> host port → prints what the server wrote, or "error CODE"
const ASK_JS =
  "const s=require('node:net').connect({host:process.argv[1],port:+process.argv[2]});let d='';" +
  "s.setTimeout(4000,()=>{console.log('error timeout');process.exit(0)});s.on('data',(b)=>d+=b);" +
  "s.on('end',()=>{console.log(d.trim());process.exit(0)});s.on('error',(e)=>{console.log('error '+e.code);process.exit(0)})";

async function whoami(ns: Namespace, host: string): Promise<string> {
  const r = await ns.run([process.execPath, '-e', ASK_JS, host, String(WHOAMI_PORT)], { timeoutMs: 15_000 });
  return r.stdout.trim() || `exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`;
}

/** The policy-routing state a user compares: every rule and every route of every table, both families. */
async function routingState(ns: Namespace): Promise<string> {
  const parts: string[] = [];
  for (const cmd of [
    ['iptables', '-t', 'mangle', '-S'],
    ['sysctl', 'net.ipv4.conf.all.src_valid_mark'],
    ['ip', '-4', 'rule'],
    ['ip', '-6', 'rule'],
    ['ip', '-4', 'route', 'show', 'table', 'all'],
    ['ip', '-6', 'route', 'show', 'table', 'all'],
  ]) {
    parts.push(`$ ${cmd.join(' ')}\n${await ns.exec(cmd)}`);
  }
  return parts.join('\n');
}

test('routes: Trellis uses a tailscaled exit node and subnet router', { timeout: 420_000 }, async (t) => {
  if (!requireTools(t, ['headscale', 'tailscaled', 'tailscale', 'ip', 'iptables', 'ping'])) return;
  if (!existsSync('/dev/net/tun')) {
    if (process.env.CI === 'true') throw new Error('exit-node lab needs /dev/net/tun');
    t.skip('exit-node lab needs /dev/net/tun');
    return;
  }

  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b'], { headscale: { policy: POLICY } });
    const { headscale: hs, authKey } = tn;
    const a = tn.hosts.a;
    const b = tn.hosts.b;
    if (!a || !b) throw new Error('tailnet lab has no hosts a and b');
    // Behind a: its ISP (a router), the "internet" host beyond it, and a LAN; a forwards (tailscaled only warns
    // when it cannot). The internet is not directly connected to a: an exit node cuts its own LANs out.
    const { inet } = await buildInternetBehind(lab, a);
    const sub = await lab.addNamespace('sub');
    await lab.linkVeth(a, sub, { a: `${SUB_GW}/24`, b: `${SUB_ADDR}/24` });
    for (const ns of [inet, sub]) {
      const p = ns.spawn([process.execPath, '-e', WHOAMI_JS, String(WHOAMI_PORT)], { label: `whoami ${ns.short}` });
      await waitUntil(`whoami in ${ns.short}`, 10_000, async () => (p.output().includes('listening') ? true : null));
    }

    // b's resolver is on the internet: with MagicDNS and no exit node, quad-100 would forward other names there.
    const dns = inet.spawn(
      [process.execPath, '--import', 'tsx', DNS_SERVER, INET_ADDR, '53', JSON.stringify({ [WEB_NAME]: WEB_ADDR })],
      { label: 'dns inet' },
    );
    await waitUntil('the internet resolver', 10_000, async () => (dns.output().includes('listening') ? true : null));
    await b.writeEtc('resolv.conf', `nameserver ${INET_ADDR}\noptions timeout:1 attempts:1\n`);
    // The exit node's resolver is on the internet too: Trellis sends other names to the exit node's DoH, which
    // answers with it.
    await a.writeEtc('resolv.conf', `nameserver ${INET_ADDR}\noptions timeout:1 attempts:1\n`);
    // An A query to quad-100, where the OS resolver points while connected: the first answer's address.
    const resolve = async () => {
      const r = await b.run([process.execPath, '-e', QUERY_JS, '100.100.100.100', WEB_NAME], { timeoutMs: 10_000 });
      return r.stdout.trim() || `exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`;
    };

    // Strict reverse-path filtering, as some distributions set it: replies to the engine's marked sockets must
    // still get in while the default route points into the tunnel.
    await b.exec(['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1']);
    // The kernel adds a link-local address's local route once duplicate address detection ends: settled first.
    await waitUntil('no tentative IPv6 address in namespace b', 10_000, async () =>
      (await b.exec(['ip', '-6', 'addr', 'show', 'tentative'])).trim() === '' ? true : null,
    );
    const pristine = await routingState(b);
    const ts = await startTailscaled(a, { name: 'a', env: { TS_DEBUG_USE_DERP_HTTP: '1' } });
    await ts.up({ loginServer: hs.url, authKey, hostname: TS_HOST });
    const set = await ts.cli(['set', '--advertise-exit-node', `--advertise-routes=${SUBNET}`]);
    assert.equal(set.code, 0, `tailscale set: ${set.stderr}`);
    const tsNode = await waitUntil('Headscale listing the exit node', 20_000, async () => {
      const n = (await hs.nodes()).find((x) => x.name === TS_HOST);
      return n ?? null;
    });
    await hs.cli([
      'nodes',
      'approve-routes',
      '--identifier',
      String(tsNode.id),
      '--routes',
      `0.0.0.0/0,::/0,${SUBNET}`,
    ]);

    const tr = await startTrellisNode(b, { hostname: TRELLIS_HOST, loginServer: hs.url, authKey });
    const ipA = await ts.ip();
    const { claim: step, report } = claims(
      t,
      async () => `${lab.diagnostics()}\n${await routingState(b).catch(() => '')}`,
    );
    const trellis = async (args: string[]) => {
      const r = await tr.cli(args, 30_000);
      assert.equal(r.code, 0, `trellis ${args.join(' ')}: exit ${r.code}\n${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    const offers = (s: StatusSnapshot) =>
      s.peers.some((p) => p.name === TS_HOST && p.exitNodeOption && p.routes.includes(SUBNET));

    let connected = '';
    await step('1. Trellis lists tailscaled as offering an exit node and the subnet', async (st) => {
      const s = await tr.waitFor(offers, 30_000);
      assert.ok(offers(s), `peers: ${JSON.stringify(s.peers, null, 1)}`);
      assert.ok(await pingFrom(b, ipA.v4, { count: 2, deadlineS: 20 }), 'the tunnel to a works');
      const list = await trellis(['exit-node', 'list']);
      st.diagnostic(list);
      assert.match(list, new RegExp(`${ipA.v4.replace(/\./g, '\\.')} +${TS_HOST}\\.\\S+ +online`));
      const bad = await tr.cli(['set', '--exit-node=nope'], 15_000);
      assert.equal(bad.code, 2, `${bad.stdout}${bad.stderr}`);
      assert.match(bad.stderr, /--exit-node: no peer named "nope"/);
      connected = await routingState(b);
      assert.equal(await whoami(b, INET_ADDR), 'error ENETUNREACH', 'without an exit node the internet is not routed');
      assert.match(await readFile(path.join('/etc/netns', b.name, 'resolv.conf'), 'utf8'), /100\.100\.100\.100/);
      assert.notEqual(await resolve(), WEB_ADDR, 'the internet resolver is out of reach without an exit node');
    });

    await step('2. with the exit node: the internet answers and sees the exit node’s address', async (st) => {
      const out = await trellis(['set', `--exit-node=${TS_HOST}`]);
      st.diagnostic(out.trim());
      const s = await tr.waitFor((x) => x.exitNode?.active === true && x.exitNode.online === true, 10_000);
      assert.equal(s.exitNode?.name, TS_HOST, JSON.stringify(s.exitNode));
      assert.equal(s.peers.find((p) => p.name === TS_HOST)?.exitNode, true);
      const rules = await b.exec(['ip', '-4', 'rule']);
      for (const want of [
        /^5210:\s+from all fwmark 0x80000\/0xff0000 lookup main/m,
        /^5230:\s+from all fwmark 0x80000\/0xff0000 lookup default/m,
        /^5250:\s+from all fwmark 0x80000\/0xff0000 unreachable/m,
        /^5270:\s+from all lookup 52/m,
      ]) {
        assert.match(rules, want);
      }
      let last = '';
      const seen = await waitUntil('the internet host answering through the exit node', 20_000, async () => {
        const r = await whoami(b, INET_ADDR);
        last = r;
        return r.startsWith('error') || r.startsWith('exit') ? null : r;
      }).catch(async (e: Error) => {
        const dump = [
          `last answer: ${last}`,
          await b.exec(['ip', 'route', 'get', INET_ADDR]).catch((x: Error) => x.message),
          await b.exec(['ss', '-tuanpe']).catch((x: Error) => x.message),
          JSON.stringify((await tr.status()).counters),
          await a.exec(['iptables', '-t', 'nat', '-S']).catch((x: Error) => x.message),
          await a.exec(['iptables', '-S']).catch((x: Error) => x.message),
          (await ts.cli(['status'])).stdout,
          (await ts.cli(['debug', 'netmap'])).stdout.slice(0, 6000),
        ].join('\n---\n');
        throw new Error(`${e.message}\n${dump}`);
      });
      assert.equal(seen, A_WAN, 'the internet host sees the exit node’s (SNAT) address');
      // IPv6 leaves through the exit node too (::/0), masqueraded by tailscaled to a's IPv6 address.
      const seen6 = await waitUntil('the internet host answering over IPv6 through the exit node', 20_000, async () => {
        last = await whoami(b, INET_ADDR6);
        return last.startsWith('error') || last.startsWith('exit') ? null : last;
      }).catch((e: Error) => {
        throw new Error(`${e.message}; last answer: ${last}`);
      });
      st.diagnostic(`the internet host saw b's IPv6 connection from ${seen6}`);
      assert.equal(seen6, A_WAN6, 'the internet host sees the exit node’s IPv6 address');
      assert.ok(await pingFrom(b, INET_ADDR, { count: 2, deadlineS: 10 }), 'ICMP to the internet host too');
      // MagicDNS sends other names to the exit node's DoH (peerapi-dns-proxy), which asks its own resolver.
      assert.equal(await resolve(), WEB_ADDR, 'a name resolves through the exit node');
      assert.match(dns.output(), new RegExp(`query ${WEB_NAME} from ${A_WAN.replace(/\./g, '\\.')}`));
      assert.match(await trellis(['status']), new RegExp(`${TS_HOST} .*exit node`));
      assert.match(await b.exec(['iptables', '-t', 'mangle', '-S']), /--restore-mark/);
      assert.match(await b.exec(['sysctl', 'net.ipv4.conf.all.src_valid_mark']), /= 1/);
    });

    await step('3. control, DERP/STUN and the peer keep working with the exit node in use', async (st) => {
      // A control change (the subnet's approval withdrawn, then given back) reaches Trellis over the map stream,
      // which must bypass the tunnel.
      const approve = (routes: string) =>
        hs.cli(['nodes', 'approve-routes', '--identifier', String(tsNode.id), '--routes', routes]);
      const hasSubnet = (x: StatusSnapshot) => x.peers.some((p) => p.name === TS_HOST && p.routes.includes(SUBNET));
      await approve('0.0.0.0/0,::/0');
      const withdrawn = await tr.waitFor((x) => !hasSubnet(x), 30_000);
      assert.equal(hasSubnet(withdrawn), false, 'the withdrawn approval arrived from control');
      await approve(`0.0.0.0/0,::/0,${SUBNET}`);
      const s = await tr.waitFor(hasSubnet, 30_000);
      assert.ok(hasSubnet(s), 'the new approval arrived from control');
      const nc = JSON.parse(await trellis(['netcheck', '--json'])) as {
        udp: boolean;
        derpConnected: number[];
        derp?: { region: number; latencyMs: number };
      };
      st.diagnostic(`netcheck: udp=${nc.udp} derpConnected=${nc.derpConnected} derp=${JSON.stringify(nc.derp)}`);
      assert.equal(nc.udp, true, 'STUN (on the marked UDP socket) answers with the exit node in use');
      assert.equal(nc.derp?.region, 999, 'the home DERP server answers (its connection bypasses the tunnel)');
      const ping = await trellis(['ping', TS_HOST, '--count', '3']);
      st.diagnostic(ping.trim());
      assert.ok(await pingFrom(b, ipA.v4, { count: 2, deadlineS: 10 }), 'the peer over the tunnel');
      assert.equal(s.state, 'Running');
    });

    await step('4. the LAN goes through the tunnel without allow-LAN-access, directly with it', async () => {
      // Headscale's address on the LAN: not the exit node's own, so it answers only when the LAN is direct.
      const routeGet = () => b.exec(['ip', '-4', 'route', 'get', HEADSCALE_ADDR]);
      assert.match(await routeGet(), /dev trellis0/, 'without allow-LAN-access the LAN is routed into the tunnel');
      // tailscaled's exit node does not forward to its own LAN: the LAN host is unreachable from b.
      assert.equal(await pingFrom(b, HEADSCALE_ADDR, { count: 1, deadlineS: 3 }), false);
      await trellis(['set', '--exit-node-allow-lan-access=true']);
      await waitUntil('the LAN route thrown back to main', 10_000, async () =>
        /dev trellis0/.test(await routeGet()) ? null : true,
      );
      assert.ok(await pingFrom(b, HEADSCALE_ADDR, { count: 2, deadlineS: 10 }), 'the LAN answers directly');
      assert.match(await b.exec(['ip', '-4', 'route', 'show', 'table', '52']), /throw 203\.0\.113\.0\/24/);
      assert.equal(await whoami(b, INET_ADDR), A_WAN, 'the internet still goes through the exit node');
    });

    await step(
      '4b. an exit node that goes offline stays chosen: internet traffic is held, not sent outside',
      async () => {
        ts.process.signal('SIGKILL');
        const s = await tr.waitFor((x) => x.exitNode?.online === false, 30_000);
        assert.equal(s.exitNode?.online, false, JSON.stringify(s.exitNode));
        assert.equal(s.prefs.exitNodeID, s.exitNode?.id, 'still chosen');
        assert.ok(
          s.health.some((h) => h.code === 'exit-node' && /offline/.test(h.message)),
          JSON.stringify(s.health),
        );
        assert.match(await b.exec(['ip', '-4', 'route', 'get', INET_ADDR]), /dev trellis0 table 52/);
        assert.match(await trellis(['status']), /# Exit node: ts-exit \(offline: internet traffic is held\)/);
        await ts.restart();
        const back = await tr.waitFor((x) => x.exitNode?.online === true, 30_000);
        assert.equal(back.exitNode?.online, true);
        await waitUntil('the internet through the exit node again', 30_000, async () =>
          (await whoami(b, INET_ADDR)) === A_WAN ? true : null,
        );
      },
    );

    await step(
      '4c. a LAN that appears while the exit node is in use is reached directly (allow-LAN), and goes again',
      async (st) => {
        // A new network on b (a docking station, another Wi-Fi): no routing change in Trellis, only the OS's addresses.
        const lan2 = await lab.addNamespace('lan2');
        const { ifA } = await lab.linkVeth(b, lan2, { a: `${LAN2_GW}/24`, b: `${LAN2_HOST}/24` });
        const table52 = () => b.exec(['ip', '-4', 'route', 'show', 'table', '52']);
        try {
          const thrown = await waitUntil('the new LAN thrown back to main', 20_000, async () => {
            const t52 = await table52();
            return t52.includes(`throw ${LAN2}`) ? t52 : null;
          }).catch(async (e: Error) => {
            throw new Error(`${e.message}\n${await table52()}\n--- daemon:\n${tr.output().slice(-2000)}`);
          });
          st.diagnostic(`table 52:\n${thrown}`);
          assert.ok(await pingFrom(b, LAN2_HOST, { count: 2, deadlineS: 10 }), 'the new LAN answers directly');
          assert.equal(await whoami(b, INET_ADDR), A_WAN, 'the internet still goes through the exit node');
        } finally {
          await b.exec(['ip', 'link', 'del', ifA]).catch(() => ''); // later steps compare the routing of before
        }
        await waitUntil('the gone LAN out of table 52', 20_000, async () =>
          (await table52()).includes(LAN2) ? null : true,
        );
      },
    );

    await step('5. clearing the exit node gives back exactly the rules and routes of before', async () => {
      await trellis(['set', '--exit-node=']);
      const s = await tr.waitFor((x) => x.exitNode === undefined, 10_000);
      assert.equal(s.prefs.lastExitNodeID, s.peers.find((p) => p.name === TS_HOST)?.stableID);
      const after = await waitUntil('the routing state of before', 10_000, async () => {
        const now = await routingState(b);
        return now === connected ? now : null;
      }).catch(async () => routingState(b));
      assert.equal(after, connected);
      assert.equal(await whoami(b, INET_ADDR), 'error ENETUNREACH');
    });

    await step(
      '6. accept-routes: the host behind the subnet router answers (SNAT); off restores the tables',
      async () => {
        assert.equal(await whoami(b, SUB_ADDR), 'error ENETUNREACH', 'not routed before accept-routes');
        await trellis(['set', '--accept-routes=true']);
        const seen = await waitUntil('the subnet host answering', 20_000, async () => {
          const r = await whoami(b, SUB_ADDR);
          return r.startsWith('error') || r.startsWith('exit') ? null : r;
        });
        assert.equal(seen, SUB_GW, 'tailscaled SNATs subnet traffic to its LAN address');
        await trellis(['set', '--accept-routes=false']);
        const after = await waitUntil('the routing state of before', 10_000, async () => {
          const now = await routingState(b);
          return now === connected ? now : null;
        }).catch(async () => routingState(b));
        assert.equal(after, connected);
      },
    );

    await step('6b. down takes everything away; up puts the chosen exit node back', async () => {
      await trellis(['set', `--exit-node=${TS_HOST}`]);
      await waitUntil('the rules installed', 10_000, async () =>
        /^5270:/m.test(await b.exec(['ip', '-4', 'rule'])) ? true : null,
      );
      await trellis(['down']);
      const after = await waitUntil('the pristine routing state', 10_000, async () => {
        const now = await routingState(b);
        return now === pristine ? now : null;
      }).catch(async () => routingState(b));
      assert.equal(after, pristine);
      await trellis(['up']);
      await tr.waitFor((x) => x.state === 'Running' && x.exitNode?.active === true, 30_000);
      await waitUntil('the internet through the exit node after up', 30_000, async () =>
        (await whoami(b, INET_ADDR)) === A_WAN ? true : null,
      );
    });

    await step('7. a daemon killed with -9 leaves rules behind; started again, it takes them away', async (st) => {
      await trellis(['set', `--exit-node=${TS_HOST}`]);
      await tr.waitFor((x) => x.exitNode?.active === true, 10_000);
      await waitUntil('the rules installed', 10_000, async () =>
        /^5270:/m.test(await b.exec(['ip', '-4', 'rule'])) ? true : null,
      );
      tr.process.signal('SIGKILL');
      await Promise.race([tr.process.exited, delay(5_000)]);
      assert.match(await b.exec(['ip', '-4', 'rule']), /^5270:/m, 'a killed daemon cannot clean up');
      // Started again to stay down (as after a reboot with the tunnel off): nothing of ours may remain.
      const prefsFile = path.join(await activeProfileDir(tr.stateDir), 'prefs.json');
      const saved = JSON.parse(await readFile(prefsFile, 'utf8')) as { prefs: { wantRunning: boolean } };
      saved.prefs.wantRunning = false;
      await writeFile(prefsFile, JSON.stringify(saved));
      await tr.restart();
      await tr.waitFor((x) => x.state === 'Stopped', 10_000);
      const after = await waitUntil('the pristine routing state', 10_000, async () => {
        const now = await routingState(b);
        return now === pristine ? now : null;
      }).catch(async () => routingState(b));
      st.diagnostic(
        tr
          .output()
          .split('\n')
          .filter((l) => l.includes('routes:'))
          .join('\n'),
      );
      assert.equal(after, pristine);
    });

    await step(
      '8. `up --exit-node` from logged out (no peers known yet) chooses it once the netmap names it',
      async () => {
        await trellis(['logout']);
        await tr.waitFor((x) => x.state === 'NeedsLogin' && x.peers.length === 0, 15_000);
        const out = await trellis(['up', '--login-server', hs.url, '--auth-key', authKey, `--exit-node=${TS_HOST}`]);
        assert.match(out, /Running\./);
        const s = await tr.waitFor((x) => x.exitNode?.active === true, 10_000);
        assert.equal(s.exitNode?.name, TS_HOST);
        await waitUntil('the internet through the exit node', 30_000, async () =>
          (await whoami(b, INET_ADDR)) === A_WAN ? true : null,
        );
        await trellis(['set', '--exit-node=']);
      },
    );

    report();
  });
});
