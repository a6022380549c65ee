// An "internet with NATs" lab on top of the tailnet lab: namespace `net` holds the internet bridge br0
// (203.0.113.0/24) with Headscale, its embedded DERP and STUN at 203.0.113.1. Site i is a router namespace with a
// WAN leg on br0 (203.0.113.<10+i>/24) and a LAN leg (198.51.100.<16(i+1)>/28, router .+1) to one host namespace
// (.+2, default route via the router). NAT kinds (iptables in the router, see docs/protocol/datapath.md §9.2):
//   easy        MASQUERADE: endpoint-independent mapping (source port kept when free), 5-tuple filtering;
//               unsolicited WAN input is dropped (see natRules: else simultaneous open gets a new port)
//   hard        MASQUERADE --random-fully: a random port per 5-tuple (endpoint-dependent mapping)
//   udp-blocked MASQUERADE and every forwarded UDP packet dropped; TCP (Headscale's HTTP, DERP) passes
//   none        plain routing: the LAN is reachable from the internet (routes in `net` and the other routers)
// Only documentation ranges; no namespace has a default route except the site hosts (via their router).
import { type Lab, type Namespace, waitLinkUp } from './netns.ts';
import { buildTailnetLab, HEADSCALE_ADDR, pingFrom, type TailnetLab, type TailnetLabOptions } from './tailnet.ts';

export type NatKind = 'easy' | 'hard' | 'none' | 'udp-blocked';

export interface NatSiteSpec {
  name: string; // [a-z0-9]{1,10}; namespaces are <name>r (router) and <name>h (host)
  nat: NatKind;
}

export interface NatSite {
  readonly name: string;
  readonly nat: NatKind;
  readonly router: Namespace;
  readonly host: Namespace;
  /** The router's internet address (the NAT's public address), 203.0.113.x. */
  readonly publicAddr: string;
  /** The host's LAN address (198.51.100.x). */
  readonly lanAddr: string;
  /** The router's LAN address, the host's gateway. */
  readonly gatewayAddr: string;
  /** The LAN prefix, e.g. 198.51.100.16/28. */
  readonly lanPrefix: string;
  /** Router interface names: WAN leg (on the internet bridge) and LAN leg. */
  readonly wanIf: string;
  readonly lanIf: string;
  /** Diagnostics: the router's iptables rules with counters and its conntrack table (UDP entries). */
  natState(): Promise<string>;
  /** `ip link set <wanIf> down|up` in the router (the site loses the internet); up waits for carrier. Going down
   * also drops the router's routes via the link and MASQUERADE's conntrack entries (new mappings afterwards). */
  setWan(up: boolean): Promise<void>;
  /**
   * url (http://203.0.113.x:port) made loopback: a TCP forwarder in this site's host listens on 127.0.0.1 and
   * relays to url's host:port. Having dialled control within the last 2 minutes, tailscaled redials an http://
   * server on a non-private, non-loopback address on :443 only (tailscale control/ts2021 isPrivateHost,
   * health.LastNoiseDialWasRecent; #14646), so it never gets back to a restarted lab Headscale; through loopback
   * it reconnects as it would to a LAN server. Only loopback and lab addresses are ever dialled.
   */
  loopbackControl(url: string): Promise<string>;
}

export interface NatLab {
  readonly tailnet: TailnetLab;
  readonly net: Namespace;
  readonly sites: Record<string, NatSite>;
  /** The site by name; throws when absent. */
  site(name: string): NatSite;
}

const RESOLV_CONF = '# trellis NAT lab namespace: no resolver\n';
const INET_PREFIX = '203.0.113';
const LAN_NET = '198.51.100';
/** node -e: a TCP relay 127.0.0.1:<argv1> → <argv2>:<argv3>, printing "listening" once bound. */
const TCP_RELAY_JS =
  "const net=require('net');const [lp,h,p]=process.argv.slice(1);net.createServer((c)=>{const u=net.connect(+p,h);" +
  "c.pipe(u).pipe(c);const end=()=>{c.destroy();u.destroy()};c.on('error',end);u.on('error',end);c.on('close',end);" +
  "u.on('close',end)}).listen(+lp,'127.0.0.1',()=>console.log('listening'))";
const MAX_SITES = 15; // 198.51.100.16/28 … 198.51.100.240/28

/** iptables arguments (without `iptables`) that make the router a NAT of the given kind. */
export function natRules(kind: NatKind, wanIf: string, lanIf: string): string[][] {
  if (kind === 'none') return [];
  const masquerade = ['-t', 'nat', '-A', 'POSTROUTING', '-o', wanIf, '-j', 'MASQUERADE'];
  const rules: string[][] = [kind === 'hard' ? [...masquerade, '--random-fully'] : masquerade];
  if (kind === 'udp-blocked') rules.push(['-A', 'FORWARD', '-p', 'udp', '-j', 'DROP']);
  // stateful: the LAN may open flows; from the WAN only replies (conntrack) are forwarded
  const established = ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'];
  rules.push(
    ['-A', 'FORWARD', '-i', lanIf, '-o', wanIf, '-j', 'ACCEPT'],
    ['-A', 'FORWARD', '-i', wanIf, ...established],
    ['-A', 'FORWARD', '-i', wanIf, '-j', 'DROP'],
    // Like a home router, drop unsolicited WAN input to the router itself. Without this, a peer's first disco
    // packet (which reaches this router before our host has sent to that peer) is accepted locally and
    // confirmed as a conntrack entry peer:p → us:41641; our host's later packet to peer:p then clashes with its
    // reply tuple and MASQUERADE picks another port, so the hole punch never meets. Dropped before conntrack
    // confirms it, the packet leaves no entry and the mapping stays endpoint-independent. Measured: without
    // this rule two official tailscaled behind "easy" never went direct (DERP for 30+ s); with it, at once.
    ['-A', 'INPUT', '-i', wanIf, ...established],
    ['-A', 'INPUT', '-i', wanIf, '-j', 'DROP'],
  );
  return rules;
}

/**
 * Builds the internet (buildTailnetLab with no LAN hosts: `net`, br0, Headscale with DERP and STUN on
 * 203.0.113.1) and one NATed site per spec, in order. Every host is checked to reach 203.0.113.1 by ICMP.
 */
export async function buildNatLab(lab: Lab, specs: NatSiteSpec[], opts: TailnetLabOptions = {}): Promise<NatLab> {
  const names = specs.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new Error(`duplicate site names: ${names}`);
  if (specs.length > MAX_SITES) throw new Error(`at most ${MAX_SITES} sites`);
  for (const s of specs) if (!/^[a-z0-9]{1,10}$/.test(s.name)) throw new Error(`bad site name: ${s.name}`);
  const tailnet = await buildTailnetLab(lab, [], opts);
  const { net } = tailnet;
  const sites: Record<string, NatSite> = {};
  for (const [i, spec] of specs.entries()) {
    const base = 16 * (i + 1);
    const publicAddr = `${INET_PREFIX}.${10 + i}`;
    const gatewayAddr = `${LAN_NET}.${base + 1}`;
    const lanAddr = `${LAN_NET}.${base + 2}`;
    const lanPrefix = `${LAN_NET}.${base}/28`;
    const router = await lab.addNamespace(`${spec.name}r`);
    const host = await lab.addNamespace(`${spec.name}h`);
    await router.writeEtc('resolv.conf', RESOLV_CONF);
    await host.writeEtc('resolv.conf', RESOLV_CONF);
    const wan = await lab.linkVeth(router, net, { a: `${publicAddr}/24` });
    await net.exec(['ip', 'link', 'set', wan.ifB, 'master', 'br0']);
    const lan = await lab.linkVeth(router, host, { a: `${gatewayAddr}/28`, b: `${lanAddr}/28` });
    await host.exec(['ip', 'route', 'add', 'default', 'via', gatewayAddr]);
    await router.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    for (const rule of natRules(spec.nat, wan.ifA, lan.ifA)) await router.exec(['iptables', ...rule]);
    const wanIf = wan.ifA;
    const lanIf = lan.ifA;
    sites[spec.name] = {
      name: spec.name,
      nat: spec.nat,
      router,
      host,
      publicAddr,
      lanAddr,
      gatewayAddr,
      lanPrefix,
      wanIf,
      lanIf,
      async natState() {
        const rules = await router.run(['iptables-save', '-c'], { timeoutMs: 5_000 });
        const ct = await router.run(['cat', '/proc/net/nf_conntrack'], { timeoutMs: 5_000 });
        const udp = ct.stdout
          .split('\n')
          .filter((l) => /\budp\b/.test(l))
          .join('\n');
        return `--- ${router.name} iptables-save -c:\n${rules.stdout.trim()}\n--- conntrack (udp):\n${udp || '(none)'}`;
      },
      async loopbackControl(url) {
        const u = new URL(url);
        if (!u.hostname.startsWith(`${INET_PREFIX}.`)) throw new Error(`not an internet address of this lab: ${url}`);
        const port = Number(u.port || 80);
        const relay = host.spawn([process.execPath, '-e', TCP_RELAY_JS, String(port), u.hostname, String(port)], {
          label: `relay 127.0.0.1:${port} → ${u.hostname}:${port} @${host.short}`,
        });
        if (!(await relay.waitForOutput(/^listening$/m, 5_000))) throw new Error(`relay failed:\n${relay.output()}`);
        return `http://127.0.0.1:${port}`;
      },
      async setWan(up) {
        await router.exec(['ip', 'link', 'set', wanIf, up ? 'up' : 'down']);
        if (up) await waitLinkUp(router, wanIf);
      },
    };
  }
  // A site without NAT is publicly routed: the internet (net and every other router) knows its LAN.
  for (const s of Object.values(sites)) {
    if (s.nat !== 'none') continue;
    await net.exec(['ip', 'route', 'add', s.lanPrefix, 'via', s.publicAddr]);
    for (const o of Object.values(sites)) {
      if (o !== s) await o.router.exec(['ip', 'route', 'add', s.lanPrefix, 'via', s.publicAddr]);
    }
  }
  for (const s of Object.values(sites)) {
    if (!(await pingFrom(s.host, HEADSCALE_ADDR, { count: 1, deadlineS: 5 }))) {
      throw new Error(`${s.host.name} (${s.nat}) cannot reach ${HEADSCALE_ADDR} through ${s.router.name}`);
    }
  }
  return {
    tailnet,
    net,
    sites,
    site(name) {
      const s = sites[name];
      if (!s) throw new Error(`no site ${name} in this NAT lab`);
      return s;
    },
  };
}
