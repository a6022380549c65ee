// wireguard-go (the reference userspace implementation) inside a lab namespace, configured with wg(8) and ip(8).
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Namespace, waitLinkUp } from './netns.ts';
import { execCommand, type ManagedProcess } from './proc.ts';

export interface WgPeerConfig {
  publicKey: string;
  presharedKey?: string;
  allowedIPs: string[];
  /** host:port, IPv6 as [addr]:port */
  endpoint?: string;
  persistentKeepalive?: number;
}

export interface WgGoConfig {
  /** The wireguard-go executable (name on PATH or path). Default 'wireguard-go' (Debian's, the interop peer); the
   * throughput bench also runs the current one, installed as wireguard-go-current by test/setup/prereqs.sh. */
  binary?: string;
  /** Defaults to a lab-owned unique name; wireguard-go's UAPI socket path is shared by all namespaces. */
  ifname?: string;
  privateKey: string;
  listenPort?: number;
  /** Inner IPv4 with prefix, e.g. 203.0.113.1/24 */
  address4?: string;
  /** Inner IPv6 with prefix, e.g. 2001:db8:100::1/64 */
  address6?: string;
  mtu?: number;
  peers: WgPeerConfig[];
  /** wireguard-go LOG_LEVEL; 'debug' helps when a handshake does not happen. Default 'error'. */
  logLevel?: 'debug' | 'error' | 'silent';
  /** How long to wait for the interface and UAPI socket. Default 5000 ms. */
  readyTimeoutMs?: number;
}

export interface WgPeerStatus {
  publicKey: string;
  hasPresharedKey: boolean;
  endpoint: string | null;
  allowedIPs: string[];
  /** Unix seconds, 0 = never */
  latestHandshake: number;
  rx: number;
  tx: number;
  persistentKeepalive: number | null;
}

export interface WgShow {
  publicKey: string;
  listenPort: number;
  peers: WgPeerStatus[];
}

export interface WireguardGo {
  readonly ns: Namespace;
  readonly ifname: string;
  readonly publicKey: string;
  readonly config: Readonly<WgGoConfig>;
  /** The running wireguard-go process (null while stopped). */
  readonly process: ManagedProcess | null;
  stop(): Promise<void>;
  /** stop() then start again with the same configuration (new sessions, same keys and port). */
  restart(): Promise<void>;
  show(): Promise<WgShow>;
  /** Runs `wg <args...>` in the namespace, e.g. ['set', ifname, 'peer', key, 'endpoint', '192.0.2.9:51820']. */
  wg(args: string[]): Promise<string>;
}

const WG_SOCK_DIR = '/var/run/wireguard';
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function genKey(): Promise<string> {
  return (await execCommand('wg', ['genkey'])).trim();
}

export async function pubKey(privateKey: string): Promise<string> {
  return (await execCommand('wg', ['pubkey'], { input: `${privateKey}\n` })).trim();
}

export async function genPsk(): Promise<string> {
  return (await execCommand('wg', ['genpsk'])).trim();
}

/** wg(8) configuration text for `wg setconf` (no wg-quick keys). */
export function renderWgConf(cfg: WgGoConfig): string {
  const lines = ['[Interface]', `PrivateKey = ${cfg.privateKey}`];
  if (cfg.listenPort !== undefined) lines.push(`ListenPort = ${cfg.listenPort}`);
  for (const p of cfg.peers) {
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`);
    if (p.presharedKey) lines.push(`PresharedKey = ${p.presharedKey}`);
    if (p.allowedIPs.length > 0) lines.push(`AllowedIPs = ${p.allowedIPs.join(', ')}`);
    if (p.endpoint) lines.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Parses `wg show <if> dump` (tab-separated; the first line is the interface). */
export function parseWgDump(text: string): WgShow {
  const rows = text
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
  const iface = rows.shift();
  if (!iface || iface.length < 4) throw new Error(`unexpected wg dump: ${text}`);
  const num = (s: string | undefined) => (s === undefined || s === 'off' ? 0 : Number(s));
  return {
    publicKey: iface[1] ?? '',
    listenPort: num(iface[2]),
    peers: rows.map((r) => {
      if (r.length < 8) throw new Error(`unexpected wg dump peer line: ${r.join('\t')}`);
      return {
        publicKey: r[0] ?? '',
        hasPresharedKey: r[1] !== '(none)',
        endpoint: r[2] === '(none)' ? null : (r[2] ?? null),
        allowedIPs: r[3] === '(none)' ? [] : (r[3] ?? '').split(','),
        latestHandshake: num(r[4]),
        rx: num(r[5]),
        tx: num(r[6]),
        persistentKeepalive: r[7] === 'off' ? null : num(r[7]),
      };
    }),
  };
}

class WgGoInstance implements WireguardGo {
  process: ManagedProcess | null = null;
  readonly ifname: string;

  constructor(
    readonly ns: Namespace,
    readonly config: Readonly<WgGoConfig>,
    readonly publicKey: string,
  ) {
    this.ifname = config.ifname ?? ns.lab.nextIfname();
    if (this.ifname.length > 15) throw new Error(`interface name too long: ${this.ifname}`);
  }

  wg(args: string[]): Promise<string> {
    return this.ns.exec(['wg', ...args]);
  }

  async start(): Promise<void> {
    if (this.process && !this.process.hasExited) throw new Error(`${this.ifname} already running`);
    const cfg = this.config;
    const bin = cfg.binary ?? 'wireguard-go';
    const proc = this.ns.spawn([bin, '-f', this.ifname], {
      label: `${this.ns.short}: ${path.basename(bin)} ${this.ifname}`,
      env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: cfg.logLevel ?? 'error' },
    });
    this.process = proc;
    await this.waitReady(proc, cfg.readyTimeoutMs ?? 5_000);

    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-wg-'));
    try {
      const conf = path.join(dir, 'wg.conf');
      await writeFile(conf, renderWgConf(cfg), { mode: 0o600 });
      await this.wg(['setconf', this.ifname, conf]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const ip = (args: string[]) => this.ns.exec(['ip', ...args]);
    if (cfg.address4) await ip(['addr', 'add', cfg.address4, 'dev', this.ifname]);
    if (cfg.address6) await ip(['-6', 'addr', 'add', cfg.address6, 'dev', this.ifname, 'nodad']);
    await ip(['link', 'set', 'dev', this.ifname, ...(cfg.mtu ? ['mtu', String(cfg.mtu)] : []), 'up']);
    await waitLinkUp(this.ns, this.ifname);
    for (const peer of cfg.peers) {
      for (const cidr of peer.allowedIPs) {
        await ip([cidr.includes(':') ? '-6' : '-4', 'route', 'replace', cidr, 'dev', this.ifname]);
      }
    }
  }

  private async waitReady(proc: ManagedProcess, timeoutMs: number): Promise<void> {
    const sock = path.join(WG_SOCK_DIR, `${this.ifname}.sock`);
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 1_000 && Date.now() < deadline; i++) {
      if (proc.hasExited) break;
      if (existsSync(sock)) {
        const r = await this.ns.run(['ip', 'link', 'show', 'dev', this.ifname], { timeoutMs: 2_000 });
        if (r.code === 0) return;
      }
      await delay(25);
    }
    await proc.stop();
    throw new Error(`${proc.label} in ${this.ns.name} not ready after ${timeoutMs} ms:\n${proc.output()}`);
  }

  async stop(): Promise<void> {
    const proc = this.process;
    if (!proc) return;
    await proc.stop();
    if (!proc.hasExited) throw new Error(`wireguard-go ${this.ifname} did not exit`);
    this.process = null;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async show(): Promise<WgShow> {
    return parseWgDump(await this.wg(['show', this.ifname, 'dump']));
  }
}

/**
 * Starts `wireguard-go -f <ifname>` in ns (managed by the lab), waits for the interface, applies the wg config,
 * addresses, MTU and a route per AllowedIPs entry.
 */
export async function startWireguardGo(ns: Namespace, cfg: WgGoConfig): Promise<WireguardGo> {
  const inst = new WgGoInstance(ns, { ...cfg, peers: cfg.peers.map((p) => ({ ...p })) }, await pubKey(cfg.privateKey));
  await inst.start();
  return inst;
}
