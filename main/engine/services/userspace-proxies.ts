// Userspace networking's doors for this machine's apps: the SOCKS5 and HTTP proxies. Their dialer sends what goes
// to the tailnet (our ranges, a peer's AllowedIPs: subnets, the chosen exit node's default routes) into the
// netstack and dials the rest from the host, as tailscaled's userspace dialer does; their resolver answers
// MagicDNS names from quad-100's table without a packet, names under control's split-DNS routes through their
// resolvers, and the rest through the OS.
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { Resolver as DnsResolver, lookup } from 'node:dns/promises';
import { isIP, connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { DataPath } from '../datapath/datapath.ts';
import { isDohUrl } from '../dns/forwarder.ts';
import { inZone } from '../dns/table.ts';
import {
  type Dialer,
  DialFailureReport,
  HttpProxyServer,
  type NetStack,
  type Resolver,
  Socks5Server,
  type UdpEndpoint,
} from '../netstack/index.ts';
import { splitHostPort } from '../netstack/proxy/http.ts';
import { resolveThroughDoh } from './userspace-doh.ts';

export class ProxyAddressError extends Error {
  override readonly name = 'ProxyAddressError';
}

/** "host:port" → where to listen: an IP literal or localhost (taken as 127.0.0.1), a port 0-65535 (0: any free). */
export function parseListenAddress(text: string, what: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text.trim()) ?? /^([^:[\]]*):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new ProxyAddressError(`${what} must be HOST:PORT (e.g. localhost:1055), got "${text}"`);
  const host = m[1] === 'localhost' || m[1] === '' ? '127.0.0.1' : m[1];
  if (!isIP(host)) throw new ProxyAddressError(`${what} must name an IP address or localhost, got "${m[1]}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new ProxyAddressError(`${what} needs a port from 0 to 65535, got ${port}`);
  return { host, port };
}

const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** A stream's error never crashes the engine, also when nobody listens any more (a dial that timed out). */
const ignore = () => {};

function dialStack(stack: NetStack, address: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = stack.connect(address, port);
    s.on('error', ignore);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function dialHost(address: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: address, port });
    s.on('error', ignore);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Only plain "ip" or "ip:port" resolvers are asked directly (a DoH URL is quad-100's business). */
function plainServers(list: readonly string[]): string[] {
  return list.filter((r) => {
    if (isIP(r)) return true;
    try {
      return isIP(splitHostPort(r).host.replace(/^\[|\]$/g, '')) !== 0;
    } catch {
      return false;
    }
  });
}

export class UserspaceProxies {
  private socks: Socks5Server | undefined;
  private http: HttpProxyServer | undefined;
  /** Where they listen, "host:port", once listening. */
  socks5 = '';
  httpProxy = '';

  constructor(
    private readonly dp: Pick<DataPath, 'routesViaTailnet' | 'userspaceStack' | 'dnsTable'>,
    private readonly log: (m: string) => void,
  ) {
    this.failures = new DialFailureReport(log);
  }

  private readonly failures: DialFailureReport;

  readonly dial: Dialer = (address, port) => {
    if (!this.dp.routesViaTailnet(address)) return dialHost(address, port);
    const stack = this.dp.userspaceStack;
    if (!stack) return Promise.reject(Object.assign(new Error('the tailnet is not up'), { code: 'ENETUNREACH' }));
    return dialStack(stack, address, port);
  };

  readonly resolve: Resolver = async (name) => {
    const t = this.dp.dnsTable;
    const n = name.toLowerCase().replace(/\.+$/, '');
    const hit = t.hosts.get(n) ?? t.searchDomains.map((d) => t.hosts.get(`${n}.${d}`)).find((h) => h);
    if (hit) return [...hit.v4, ...hit.v6];
    if (t.authoritative.some((z) => inZone(n, z))) throw new Error(`${name} is not a name in the tailnet`);
    // A split-DNS route of control's goes to its resolvers; the rest to the OS (hosts file and all), as apps would,
    // unless an exit node is in use.
    const route = t.routes.find((r) => r.suffix !== '' && inZone(n, r.suffix));
    // With an exit node, quad-100's default route is its DoH: asked through the tailnet, never the local network.
    const exitDoh = route ? undefined : t.routes.find((r) => r.suffix === '')?.resolvers.find(isDohUrl);
    if (exitDoh) return resolveThroughDoh(exitDoh, n, this.dial);
    const servers = plainServers(route?.resolvers ?? []);
    if (servers.length === 0) return (await lookup(n, { all: true })).map((a) => a.address);
    const r = new DnsResolver({ timeout: 5_000, tries: 2 });
    r.setServers(servers);
    const [v4, v6] = await Promise.allSettled([r.resolve4(n), r.resolve6(n)]);
    const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (out.length === 0) throw new Error(`${name} has no address`);
    return out;
  };

  /** A UDP port for one SOCKS5 UDP ASSOCIATE: tailnet destinations through the netstack, the rest from the host. */
  private openUdp(): UdpEndpoint {
    const stack = this.dp.userspaceStack;
    if (!stack) throw new Error('the tailnet is not up');
    const tail = stack.bindUdp();
    let host: DgramSocket | undefined;
    const listeners: Array<(data: Buffer, remote: { address: string; port: number }) => void> = [];
    const hostSocket = (v6: boolean): DgramSocket => {
      if (host) return host;
      host = createSocket(v6 ? 'udp6' : 'udp4');
      host.on('error', () => {});
      host.on('message', (d, r) => {
        for (const l of listeners) l(d, r);
      });
      return host;
    };
    return {
      send: (data, port, address) => {
        try {
          if (this.dp.routesViaTailnet(address)) tail.send(data, port, address);
          else hostSocket(isIP(address) === 6).send(data, port, address);
        } catch {} // a datagram that cannot go is lost, as UDP is
      },
      on: (_event, listener) => {
        listeners.push(listener);
        tail.on('message', listener);
        return undefined;
      },
      close: () => {
        tail.close();
        host?.close();
      },
    };
  }

  /** Listens where asked; a proxy that cannot listen is reported and the other still runs. */
  async start(o: { socks5Listen?: string; httpProxyListen?: string }): Promise<string[]> {
    const problems: string[] = [];
    if (o.socks5Listen && !this.socks) {
      const socks = new Socks5Server({
        dial: this.dial,
        resolve: this.resolve,
        openUdp: () => this.openUdp(),
        onDialFailure: (e) => this.failures.report('SOCKS5', e),
      });
      try {
        const { host, port } = parseListenAddress(o.socks5Listen, 'the SOCKS5 address');
        const a = await socks.listen(port, host);
        this.socks = socks;
        this.socks5 = hostPort(a.address, a.port);
        this.log(`SOCKS5 proxy listening on ${this.socks5}`);
      } catch (e) {
        problems.push(`the SOCKS5 proxy cannot listen on ${o.socks5Listen}: ${(e as Error).message}`);
      }
    }
    if (o.httpProxyListen && !this.http) {
      const http = new HttpProxyServer({
        dial: this.dial,
        resolve: this.resolve,
        onDialFailure: (e) => this.failures.report('HTTP', e),
      });
      try {
        const { host, port } = parseListenAddress(o.httpProxyListen, 'the HTTP proxy address');
        const a = await http.listen(port, host);
        this.http = http;
        this.httpProxy = hostPort(a.address, a.port);
        this.log(`HTTP proxy listening on ${this.httpProxy}`);
      } catch (e) {
        problems.push(`the HTTP proxy cannot listen on ${o.httpProxyListen}: ${(e as Error).message}`);
      }
    }
    return problems;
  }

  close(): void {
    void this.socks?.close();
    void this.http?.close();
    this.socks = this.http = undefined;
    this.socks5 = this.httpProxy = '';
  }
}
