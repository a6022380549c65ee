// Lab pieces for exit nodes and subnet routes: a LAN behind a router host (192.0.2.0/24 and 2001:db8:1::/64, a host
// "lan" at 192.0.2.10 that also routes to a far network 198.51.100.0/24 and 2001:db8:2::/64 with a host "web" at
// 198.51.100.10 and 2001:db8:2::10), the router's iptables as text to compare, Headscale's route approval, and a TCP
// server that says who connected. The IPv6 networks are documentation prefixes, like the IPv4 ones.
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { connectDaemon } from '../../../main/engine/ipc/daemon-client.ts';
import type { Prefs, StatusSnapshot } from '../../../main/engine/protocol.ts';
import type { Headscale } from './headscale.ts';
import { type Lab, type Namespace, withLab } from './netns.ts';
import type { ManagedProcess } from './proc.ts';
import { buildTailnetLab, type TailnetLab } from './tailnet.ts';

export const LAN_NET = '192.0.2.0/24';
export const ROUTER_LAN_ADDR = '192.0.2.1';
export const LAN_HOST = '192.0.2.10';
export const FAR_NET = '198.51.100.0/24';
export const FAR_HOST = '198.51.100.10';
export const ROUTER_LAN_ADDR6 = '2001:db8:1::1';
export const LAN_HOST6 = '2001:db8:1::10';
export const FAR_HOST6 = '2001:db8:2::10';

export interface BehindRouter {
  lan: Namespace;
  web: Namespace;
}

/**
 * Builds router ─ lan (192.0.2.0/24, 2001:db8:1::/64) ─ web (198.51.100.0/24, 2001:db8:2::/64): `lan` forwards
 * between them; the router's default routes go via `lan`, so `web` is on no network the router is attached to (its
 * exit-node filter lets it through) while the LAN is the router's own (cut out of what an exit node offers unless
 * advertised).
 */
export async function buildBehindRouter(lab: Lab, router: Namespace): Promise<BehindRouter> {
  const lan = await lab.addNamespace('lan');
  const web = await lab.addNamespace('web');
  await lab.linkVeth(router, lan, {
    a: `${ROUTER_LAN_ADDR}/24`,
    b: `${LAN_HOST}/24`,
    a6: `${ROUTER_LAN_ADDR6}/64`,
    b6: `${LAN_HOST6}/64`,
  });
  await lab.linkVeth(lan, web, {
    a: '198.51.100.1/24',
    b: `${FAR_HOST}/24`,
    a6: '2001:db8:2::1/64',
    b6: `${FAR_HOST6}/64`,
  });
  await lan.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  await web.exec(['ip', 'route', 'add', 'default', 'via', '198.51.100.1']);
  await web.exec(['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:2::1']);
  await router.exec(['ip', 'route', 'add', 'default', 'via', LAN_HOST]);
  await router.exec(['ip', '-6', 'route', 'add', 'default', 'via', LAN_HOST6]);
  return { lan, web };
}

const BUILTIN_CHAINS = /^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) ACCEPT/;

/**
 * The rules of `iptables-save` and `ip6tables-save` in ns (each line prefixed by the family): chains and rules, without
 * counters, table headers and the built-in chains' default policies — equal text = equal rules, whether or not a table
 * had been loaded before.
 */
export async function netfilterText(ns: Namespace): Promise<string> {
  const out: string[] = [];
  for (const [family, tool] of [
    ['4', 'iptables-save'],
    ['6', 'ip6tables-save'],
  ]) {
    const r = await ns.run([tool], { timeoutMs: 10_000 });
    let table = '';
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      if (!line.startsWith('-A ') && !(line.startsWith(':') && !BUILTIN_CHAINS.test(line))) continue;
      out.push(`${family} ${table} ${line.replace(/ \[\d+:\d+\]$/, '').trim()}`);
    }
  }
  return out.join('\n');
}

/** The Headscale node ID of the node with this host name. */
export async function nodeId(hs: Headscale, hostname: string): Promise<string> {
  const n = (await hs.nodes()).find((x) => x.name === hostname || x.givenName === hostname);
  if (!n) throw new Error(`Headscale has no node ${hostname}`);
  return String(n.id);
}

/** `headscale nodes approve-routes` (the whole approved list). */
export async function approveRoutes(hs: Headscale, hostname: string, routes: string[]): Promise<void> {
  await hs.cli(['nodes', 'approve-routes', '--identifier', await nodeId(hs, hostname), '--routes', routes.join(',')]);
}

/** setPrefs over the daemon's socket (the CLI's route flags are another branch's). */
export async function setPrefs(socket: string, prefs: Partial<Prefs>): Promise<Prefs> {
  const c = await connectDaemon(socket);
  try {
    return (await c.request('setPrefs', prefs)) as Prefs;
  } finally {
    c.close();
  }
}

export function healthHas(s: StatusSnapshot, word: string): boolean {
  return (s.health ?? []).some((h) => JSON.stringify(h).includes(word));
}

// node -e <src> ip port ms → prints "listening", then "from <ip>" for each connection (and answers "hi")
const WHO_JS =
  "const s=require('node:net').createServer((c)=>{console.log('from '+c.remoteAddress.replace(/^::ffff:/,''));c.end('hi\\n')});" +
  "s.listen({host:process.argv[1],port:+process.argv[2]},()=>console.log('listening'));setTimeout(()=>process.exit(0),+process.argv[3])";
// node -e <src> host port ms → connected | timeout | error <code>
const PROBE_JS =
  "const s=require('node:net').connect({host:process.argv[1],port:+process.argv[2]});" +
  "const out=(w)=>{console.log(w);process.exit(0)};setTimeout(()=>out('timeout'),+process.argv[3]);" +
  "s.on('data',()=>{s.destroy();out('connected')});" +
  "s.on('error',(e)=>out(e.code==='ECONNREFUSED'?'refused':'error '+e.code))";

/** A TCP server in ns that prints who connected; waits until it listens. */
export async function whoServer(ns: Namespace, ip: string, port: number): Promise<ManagedProcess> {
  const p = ns.spawn([process.execPath, '-e', WHO_JS, ip, String(port), '600000'], {
    label: `${ns.short}: who ${port}`,
  });
  if (!(await p.waitForOutput(/^listening$/m, 10_000))) throw new Error(`who server in ${ns.short}:\n${p.output()}`);
  return p;
}

/** Connects from ns to host:port and waits for the first byte: connected | timeout | refused | error …. */
export async function tcpProbe(ns: Namespace, host: string, port: number, ms = 5_000): Promise<string> {
  const r = await ns.run([process.execPath, '-e', PROBE_JS, host, String(port), String(ms)], {
    timeoutMs: ms + 10_000,
  });
  return r.code === 0 ? r.stdout.trim() : `probe exit ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 300)}`;
}

// node -e <src> url method b64query → prints {"status":…,"type":…,"body":"<base64>"}
const DOH_JS =
  'const [u,m,q]=process.argv.slice(1);const body=Buffer.from(q,"base64url");' +
  'const url=m==="GET"?u+"?dns="+q:u;' +
  'fetch(url,{method:m,headers:m==="POST"?{"content-type":"application/dns-message"}:{},body:m==="POST"?body:undefined,' +
  'signal:AbortSignal.timeout(10000)}).then(async(r)=>{const b=Buffer.from(await r.arrayBuffer());' +
  'console.log(JSON.stringify({status:r.status,type:r.headers.get("content-type")||"",body:b.toString("base64")}))})' +
  '.catch((e)=>console.log(JSON.stringify({status:0,type:"",body:"",error:e.message})))';

/** A DoH request (GET ?dns= or POST) from ns: status, content type and the body's bytes. */
export async function dohRequest(
  ns: Namespace,
  url: string,
  method: 'GET' | 'POST',
  query: Uint8Array,
): Promise<{ status: number; type: string; body: Buffer; raw: string }> {
  const q = Buffer.from(query).toString('base64url');
  const r = await ns.run([process.execPath, '-e', DOH_JS, url, method, q], { timeoutMs: 20_000 });
  const raw = `${r.stdout}${r.stderr}`;
  try {
    const j = JSON.parse(r.stdout) as { status: number; type: string; body: string };
    return { status: j.status, type: j.type, body: Buffer.from(j.body, 'base64'), raw };
  } catch {
    return { status: 0, type: '', body: Buffer.alloc(0), raw };
  }
}

/** The policy-routing state a user compares: every rule and every route of every table, both families. */
export async function routingState(ns: Namespace): Promise<string> {
  const parts: string[] = [];
  for (const cmd of [
    ['ip', '-4', 'rule'],
    ['ip', '-6', 'rule'],
    ['ip', '-4', 'route', 'show', 'table', 'all'],
    ['ip', '-6', 'route', 'show', 'table', 'all'],
  ]) {
    parts.push(`$ ${cmd.join(' ')}\n${await ns.exec(cmd)}`);
  }
  return parts.join('\n');
}

export interface RouterLab {
  lab: Lab;
  tn: TailnetLab;
  /** Tailnet hosts: a uses the routes that b offers. */
  a: Namespace;
  b: Namespace;
  /** b's LAN host and the "internet" host behind it. */
  lan: Namespace;
  web: Namespace;
}

/** The route tests' lab: tailnet hosts a and b under a Headscale policy, with b's LAN and the "internet" behind b.
 *  It needs a TUN: without one the test fails under CI=true and is skipped elsewhere. */
export async function withRouterLab(
  t: TestContext,
  policy: Record<string, unknown>,
  run: (l: RouterLab) => Promise<void>,
): Promise<void> {
  if (!existsSync('/dev/net/tun')) {
    if (process.env.CI === 'true') throw new Error('the route lab needs /dev/net/tun');
    t.skip('the route lab needs /dev/net/tun');
    return;
  }
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b'], { headscale: { policy } });
    const [a, b] = [tn.hosts.a, tn.hosts.b];
    if (!a || !b) throw new Error('no hosts a and b');
    const { lan, web } = await buildBehindRouter(lab, b);
    await run({ lab, tn, a, b, lan, web });
  });
}

/** Addresses of the "internet" behind a host (buildInternetBehind), documentation prefixes for both families. */
export const INTERNET = {
  /** The host's WAN addresses, and its ISP router's on that link (192.0.2.0/24, 2001:db8:a::/64). */
  wan: '192.0.2.2',
  wan6: '2001:db8:a::2',
  ispWan: '192.0.2.1',
  ispWan6: '2001:db8:a::1',
  /** The ISP router's and the internet host's on the far link (198.51.100.0/24, 2001:db8:b::/64). */
  ispInet: '198.51.100.1',
  ispInet6: '2001:db8:b::1',
  inet: '198.51.100.10',
  inet6: '2001:db8:b::10',
} as const;

/**
 * Builds host ─ isp ─ inet: the host's default routes (both families) go via isp, which forwards to inet; inet is
 * reachable from nowhere else and routes back via isp. The host forwards both families, as an exit node must.
 */
export async function buildInternetBehind(lab: Lab, host: Namespace): Promise<{ isp: Namespace; inet: Namespace }> {
  const n = INTERNET;
  const isp = await lab.addNamespace('isp');
  const inet = await lab.addNamespace('inet');
  await lab.linkVeth(host, isp, { a: `${n.wan}/24`, b: `${n.ispWan}/24`, a6: `${n.wan6}/64`, b6: `${n.ispWan6}/64` });
  await lab.linkVeth(isp, inet, {
    a: `${n.ispInet}/24`,
    b: `${n.inet}/24`,
    a6: `${n.ispInet6}/64`,
    b6: `${n.inet6}/64`,
  });
  await host.exec(['ip', 'route', 'add', 'default', 'via', n.ispWan]);
  await host.exec(['ip', '-6', 'route', 'add', 'default', 'via', n.ispWan6]);
  await inet.exec(['ip', 'route', 'add', 'default', 'via', n.ispInet]);
  await inet.exec(['ip', '-6', 'route', 'add', 'default', 'via', n.ispInet6]);
  for (const ns of [host, isp]) {
    await ns.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  }
  return { isp, inet };
}
