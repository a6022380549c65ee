import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Namespace } from './netns.ts';
import { delay, type ManagedProcess, type RunResult, withTimeout } from './proc.ts';
import { goBinary } from './tools.ts';

export const TAILSCALE_VERSION = 'v1.102.3';

/** Absolute path of tailscaled: PATH, then the Go bin directories; null if absent. */
export const tailscaledBinary = (): string | null => goBinary('tailscaled');
/** Absolute path of the tailscale CLI, looked up like tailscaledBinary(). */
export const tailscaleBinary = (): string | null => goBinary('tailscale');

// Make Go-installed binaries visible on PATH for requireTools(t, ['tailscaled', 'tailscale']).
tailscaledBinary();
tailscaleBinary();

export interface TailscaledOptions {
  name: string; // [a-z0-9]{1,12}; the TUN is ts-<name>
  tun?: boolean; // default true: a real TUN; false: --tun=userspace-networking
  socks5Server?: string; // --socks5-server=ADDR, e.g. '127.0.0.1:1055' (none by default)
  port?: number; // UDP port for WireGuard/disco, default 41641 (0 picks a free one)
  env?: Record<string, string>; // extra environment for tailscaled, e.g. { TS_DEBUG_USE_DERP_HTTP: '1' }
  startTimeoutMs?: number; // bound for the first `status --json` answer; default 20 s
  /** Run in a mount namespace of its own whose /etc is an overlay in the temp dir, the namespace's resolv.conf bound
   * over it: `tailscale set --accept-dns=true` may then manage DNS (its backup file included) without touching the
   * host's /etc. */
  privateEtc?: boolean;
}

export interface UpOptions {
  loginServer: string;
  authKey: string;
  hostname: string;
  acceptDns?: false; // always --accept-dns=false: tailscaled must not touch the (shared) resolv.conf
  timeoutS?: number; // tailscale up --timeout, default 60
}

/** The subset of ipnstate.PeerStatus (`tailscale status --json`) the lab reads; names as in the JSON. */
export interface TsPeer {
  ID: string;
  PublicKey: string;
  HostName: string;
  DNSName: string;
  TailscaleIPs: string[];
  Online: boolean;
  CurAddr: string; // ip:port of the direct path, '' while relayed
  Relay: string; // home DERP region code
  PeerRelay: string;
  RxBytes: number;
  TxBytes: number;
  LastHandshake: string; // RFC 3339; Go's zero time 0001-01-01T00:00:00Z when none
}

export interface TsStatus {
  BackendState: string; // NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting, Running
  Self: TsPeer | null;
  Peer: Record<string, TsPeer>; // keyed by nodekey:…
  peers: TsPeer[]; // Object.values(Peer)
  raw: Record<string, unknown>;
}

export interface PingOptions {
  count?: number; // -c, default 10
  timeoutS?: number; // --timeout per ping, default 2
}

export interface PingResult {
  ok: boolean; // at least one pong
  via: 'direct' | 'derp' | 'unknown'; // path of the last pong
  endpoint?: string; // ip:port of the last direct pong
  latencyMs?: number; // of the last pong
  output: string;
}

export interface Tailscaled {
  readonly name: string;
  readonly ns: Namespace;
  readonly dir: string;
  readonly socket: string;
  readonly tunName: string | null; // null with userspace networking
  readonly port: number;
  /** The current daemon process (replaced by restart()). */
  readonly process: ManagedProcess;
  /** `tailscale --socket=… <args>` inside the namespace; never throws for a non-zero exit. */
  cli(args: string[], timeoutMs?: number): Promise<RunResult>;
  up(opts: UpOptions): Promise<void>;
  status(): Promise<TsStatus>;
  ping(target: string, opts?: PingOptions): Promise<PingResult>;
  ip(): Promise<{ v4: string; v6: string }>;
  /** Output of this instance's daemon processes, earlier ones first. */
  output(): string;
  /** Stops the daemon (SIGTERM, SIGKILL after 3 s) and removes its temp dir. Final. */
  stop(): Promise<void>;
  /** Stops the daemon and starts it again with the same state; waits until the CLI gets an answer. */
  restart(): Promise<void>;
}

const DEFAULT_START_MS = 20_000;
const live = new Map<string, () => ManagedProcess | null>(); // dir → current process, for the exit hook
process.on('exit', () => {
  for (const [dir, proc] of live) {
    proc()?.signal('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

const str = (x: unknown): string => (typeof x === 'string' ? x : '');
const num = (x: unknown): number => (typeof x === 'number' ? x : 0);

function toPeer(x: unknown): TsPeer {
  const p = (x && typeof x === 'object' ? x : {}) as Record<string, unknown>;
  return {
    ID: str(p.ID),
    PublicKey: str(p.PublicKey),
    HostName: str(p.HostName),
    DNSName: str(p.DNSName),
    TailscaleIPs: Array.isArray(p.TailscaleIPs) ? p.TailscaleIPs.map(String) : [],
    Online: p.Online === true,
    CurAddr: str(p.CurAddr),
    Relay: str(p.Relay),
    PeerRelay: str(p.PeerRelay),
    RxBytes: num(p.RxBytes),
    TxBytes: num(p.TxBytes),
    LastHandshake: str(p.LastHandshake),
  };
}

/** Parses `tailscale status --json` (Peer is null/absent when there are no peers). */
export function parseStatus(json: string): TsStatus {
  const raw = JSON.parse(json) as Record<string, unknown>;
  const Peer: Record<string, TsPeer> = {};
  if (raw.Peer && typeof raw.Peer === 'object') {
    for (const [k, v] of Object.entries(raw.Peer as Record<string, unknown>)) Peer[k] = toPeer(v);
  }
  return {
    BackendState: str(raw.BackendState),
    Self: raw.Self ? toPeer(raw.Self) : null,
    Peer,
    peers: Object.values(Peer),
    raw,
  };
}

/** Go's time.Duration String() (e.g. 1.5ms, 250µs, 0s, 1m2.5s) → milliseconds; NaN if unparsable. */
export function goDurationMs(s: string): number {
  const units: Record<string, number> = { h: 3.6e6, m: 6e4, s: 1e3, ms: 1, us: 1e-3, µs: 1e-3, μs: 1e-3, ns: 1e-6 };
  const parts = [...s.matchAll(/([\d.]+)(h|ms|m|s|us|µs|μs|ns)/g)];
  if (parts.length === 0 || parts.map((m) => m[0]).join('') !== s) return Number.NaN;
  return parts.reduce((ms, m) => ms + Number(m[1]) * (units[m[2] ?? ''] ?? Number.NaN), 0);
}

/** Reads `tailscale ping` output: "pong from b (100.64.0.2, 12345) via 203.0.113.3:41641 in 2ms" / "via DERP(x)". */
export function parsePing(output: string): Omit<PingResult, 'output'> {
  const pongs = [...output.matchAll(/^pong from \S+ \([^)]*\) via (\S+) in (\S+)$/gm)];
  const last = pongs.at(-1);
  if (!last) return { ok: false, via: 'unknown' };
  const via = last[1] ?? '';
  const latencyMs = goDurationMs(last[2] ?? '');
  const lat = Number.isNaN(latencyMs) ? {} : { latencyMs };
  if (/^DERP\(/.test(via)) return { ok: true, via: 'derp', ...lat };
  if (/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.%\w]+\]):\d+$/.test(via)) {
    return { ok: true, via: 'direct', endpoint: via, ...lat };
  }
  return { ok: true, via: 'unknown', ...lat }; // peer-relay(…), or the ping type for TSMP/ICMP
}

export async function startTailscaled(ns: Namespace, opts: TailscaledOptions): Promise<Tailscaled> {
  const daemon = tailscaledBinary();
  const cliBin = tailscaleBinary();
  if (!daemon || !cliBin) {
    throw new Error(
      'tailscaled/tailscale not found (PATH, $(go env GOPATH)/bin, /root/go/bin); run test/setup/prereqs.sh',
    );
  }
  const { name } = opts;
  if (!/^[a-z0-9]{1,12}$/.test(name)) throw new Error(`tailscaled name must be [a-z0-9]{1,12}: ${name}`);
  const { lab } = ns;
  if (lab.isClosed) throw new Error('lab already cleaned up; not starting tailscaled');
  const useTun = opts.tun ?? true;
  if (useTun && !existsSync('/dev/net/tun')) throw new Error('tailscaled with a TUN needs /dev/net/tun');
  const tunName = useTun ? `ts-${name}` : null;
  const port = opts.port ?? 41641;
  const startMs = opts.startTimeoutMs ?? DEFAULT_START_MS;
  // Only resolv.conf is per namespace (bind-mounted by `ip netns exec`): keep tailscaled's DNS manager off the host's.
  if (!existsSync(path.join('/etc/netns', ns.name, 'resolv.conf'))) {
    await ns.writeEtc('resolv.conf', '# trellis lab namespace: no resolver\n');
  }
  const dir = await mkdtemp(path.join(tmpdir(), `trellis-ts-${name}-`));
  const socket = path.join(dir, 'tailscaled.sock');
  const args = [
    daemon,
    `--statedir=${dir}`,
    `--state=${path.join(dir, 'tailscaled.state')}`,
    `--socket=${socket}`,
    `--port=${port}`,
    `--tun=${tunName ?? 'userspace-networking'}`,
    '--no-logs-no-support',
    ...(opts.socks5Server ? [`--socks5-server=${opts.socks5Server}`] : []),
  ];
  if (opts.privateEtc) {
    await mkdir(path.join(dir, 'etc', 'up'), { recursive: true });
    await mkdir(path.join(dir, 'etc', 'work'), { recursive: true });
    const mountEtc =
      'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/up,workdir=$1/work" /etc && ' +
      'mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"';
    args.unshift(
      'unshare',
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      mountEtc,
      'sh',
      path.join(dir, 'etc'),
      path.join('/etc/netns', ns.name, 'resolv.conf'),
    );
  }
  let proc: ManagedProcess | null = null;
  let stopped = false;
  const earlier: string[] = [];
  const output = () => [...earlier, proc?.output() ?? ''].join('\n--- restarted ---\n');
  live.set(dir, () => proc);

  const cli = (cmdArgs: string[], timeoutMs = 15_000): Promise<RunResult> =>
    ns.run([cliBin, `--socket=${socket}`, ...cmdArgs], { timeoutMs });
  const fail = (what: string, r: RunResult): Error =>
    new Error(
      `tailscale ${what} (${name}): ${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}\n` +
        `${r.stderr.trim()}\n${r.stdout.trim()}\n--- tailscaled output (tail):\n${output().slice(-4_000)}`,
    );
  const status = async (): Promise<TsStatus> => {
    const r = await cli(['status', '--json'], 10_000);
    try {
      return parseStatus(r.stdout);
    } catch {
      throw fail('status --json', r);
    }
  };

  const start = async (): Promise<void> => {
    if (lab.isClosed || stopped) throw new Error('tailscaled stopped or lab cleaned up; not starting');
    if (proc) earlier.push(proc.output());
    const p = ns.spawn(args, { label: `tailscaled ${name}`, ...(opts.env ? { env: opts.env } : {}) });
    proc = p;
    void p.exited.then(() => {
      if (lab.isClosed && live.delete(dir)) rmSync(dir, { recursive: true, force: true });
    });
    const deadline = Date.now() + startMs;
    let last = '';
    while (Date.now() < deadline && !p.hasExited) {
      const r = await cli(['status', '--json'], 5_000);
      try {
        const st = parseStatus(r.stdout);
        if (st.BackendState && !p.hasExited) return;
      } catch {}
      last = `${r.stderr.trim()} ${r.stdout.trim()}`.trim().slice(0, 300);
      await delay(100);
    }
    const why = p.hasExited ? `exited (${p.exitCode ?? p.exitSignal})` : `no status after ${startMs} ms (${last})`;
    throw new Error(`tailscaled ${name} in ${ns.name} ${why}\n--- tailscaled output:\n${p.output()}`);
  };

  try {
    await start();
  } catch (e) {
    await (proc as ManagedProcess | null)?.stop();
    live.delete(dir);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    name,
    ns,
    dir,
    socket,
    tunName,
    port,
    get process() {
      if (!proc) throw new Error('tailscaled not started');
      return proc;
    },
    cli,
    async up(o) {
      const timeoutS = o.timeoutS ?? 60;
      const r = await cli(
        [
          'up',
          `--login-server=${o.loginServer}`,
          `--auth-key=${o.authKey}`,
          `--hostname=${o.hostname}`,
          '--accept-dns=false',
          `--timeout=${timeoutS}s`,
        ],
        (timeoutS + 15) * 1000,
      );
      if (r.code !== 0) throw fail('up', r);
    },
    status,
    async ping(target, o = {}) {
      const count = o.count ?? 10;
      const timeoutS = o.timeoutS ?? 2;
      const r = await cli(
        ['ping', '-c', String(count), `--timeout=${timeoutS}s`, target],
        (count * (timeoutS + 1) + 10) * 1000,
      );
      const out = `${r.stdout}${r.stderr}`;
      return { ...parsePing(r.stdout), output: out };
    },
    async ip() {
      const r = await cli(['ip'], 10_000);
      if (r.code !== 0) throw fail('ip', r);
      const lines = r.stdout.split('\n').map((l) => l.trim());
      return {
        v4: lines.find((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)) ?? '',
        v6: lines.find((l) => l.includes(':')) ?? '',
      };
    },
    output,
    async stop() {
      stopped = true;
      await proc?.stop();
      live.delete(dir);
      await rm(dir, { recursive: true, force: true });
    },
    async restart() {
      await proc?.stop();
      if (proc) await withTimeout(proc.exited, 5_000);
      await start();
    },
  };
}
