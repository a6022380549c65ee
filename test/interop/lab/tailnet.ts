// A "same LAN" tailnet lab: namespace `net` holds a bridge (203.0.113.1/24) and Headscale on :8080; every host is
// a namespace on a veth into that bridge (203.0.113.2, .3, …; no default route) with its own resolv.conf, so no
// client can touch the host's resolver. startTrellisNode runs `trellis daemon` (with a TUN) inside a host.
import { existsSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { StatusSnapshot } from '../../../main/engine/protocol.ts';
import { isolatedEnv } from '../../isolated-env.ts';
import { type Headscale, type HeadscaleOptions, startHeadscale } from './headscale.ts';
import type { Lab, Namespace } from './netns.ts';
import { delay, type ManagedProcess, type RunResult } from './proc.ts';
import { cpuProfileArgs, TRELLIS_BIN } from './trellis.ts';

export const LAN_PREFIX = '203.0.113';
export const HEADSCALE_ADDR = `${LAN_PREFIX}.1`;
const RESOLV_CONF = '# trellis tailnet lab namespace: no resolver\n';

export interface TailnetLab {
  readonly net: Namespace;
  readonly headscale: Headscale;
  /** Host namespaces by the short names given to buildTailnetLab. */
  readonly hosts: Record<string, Namespace>;
  /** The host's LAN address (203.0.113.x, no prefix length). */
  addr(host: string): string;
  /** A reusable pre-auth key (1 h) of the lab's one user. */
  readonly authKey: string;
  readonly user: string;
}

export interface TailnetLabOptions {
  user?: string; // default 'lab'
  headscale?: Omit<HeadscaleOptions, 'ns' | 'lab'>; // listenAddr defaults to 203.0.113.1:8080
}

/** A second Headscale on the lab's LAN (its own port and MagicDNS domain, second.test) and a reusable key (1 h) of
 *  its user "work": the server of a second account. */
export async function startSecondHeadscale(tn: TailnetLab): Promise<{ headscale: Headscale; authKey: string }> {
  const headscale = await startHeadscale({
    ns: tn.net,
    listenAddr: `${HEADSCALE_ADDR}:8081`,
    stunAddr: `${HEADSCALE_ADDR}:3479`,
    baseDomain: 'second.test',
  });
  const authKey = await headscale.createAuthKey(await headscale.createUser('work'), {
    reusable: true,
    expiration: '1h',
  });
  return { headscale, authKey };
}

/** Builds the LAN and starts Headscale; hosts get .2, .3, … in the order given. Torn down with the lab. */
export async function buildTailnetLab(lab: Lab, hosts: string[], opts: TailnetLabOptions = {}): Promise<TailnetLab> {
  if (new Set(hosts).size !== hosts.length || hosts.includes('net')) throw new Error(`bad host list: ${hosts}`);
  if (hosts.length > 250) throw new Error('at most 250 hosts on one /24');
  const net = await lab.addNamespace('net');
  await net.writeEtc('resolv.conf', RESOLV_CONF);
  await net.exec(['ip', 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  await net.exec(['ip', 'addr', 'add', `${HEADSCALE_ADDR}/24`, 'dev', 'br0']);
  await net.exec(['ip', 'link', 'set', 'br0', 'up']);
  const byName: Record<string, Namespace> = {};
  const addrs: Record<string, string> = {};
  for (const [i, short] of hosts.entries()) {
    const ns = await lab.addNamespace(short);
    await ns.writeEtc('resolv.conf', RESOLV_CONF);
    addrs[short] = `${LAN_PREFIX}.${i + 2}`;
    const { ifB } = await lab.linkVeth(ns, net, { a: `${addrs[short]}/24` });
    await net.exec(['ip', 'link', 'set', ifB, 'master', 'br0']);
    byName[short] = ns;
  }
  for (const ns of Object.values(byName)) {
    if (!(await pingFrom(ns, HEADSCALE_ADDR, { count: 1, deadlineS: 5 }))) {
      throw new Error(`${ns.name} cannot reach ${HEADSCALE_ADDR} on the lab LAN`);
    }
  }
  const headscale = await startHeadscale({ listenAddr: `${HEADSCALE_ADDR}:8080`, ...opts.headscale, ns: net });
  const user = opts.user ?? 'lab';
  const authKey = await headscale.createAuthKey(await headscale.createUser(user), {
    reusable: true,
    expiration: '1h',
  });
  return {
    net,
    headscale,
    hosts: byName,
    addr(host) {
      const a = addrs[host];
      if (!a) throw new Error(`no host ${host} in this tailnet lab`);
      return a;
    },
    authKey,
    user,
  };
}

export interface PingFromOptions {
  count?: number; // echo replies required, default 3 (probes every 0.2 s until then or the deadline)
  deadlineS?: number; // ping -w, default 20
}

/** `ping [-6] -c N -w deadline` inside ns: true when N replies arrived before the deadline. */
export async function pingFrom(ns: Namespace, addr: string, opts: PingFromOptions = {}): Promise<boolean> {
  const count = Math.max(1, Math.floor(opts.count ?? 3));
  const deadlineS = Math.max(1, Math.ceil(opts.deadlineS ?? 20));
  const v6 = addr.includes(':');
  // ping counts ICMP errors (e.g. "unreachable" while a peer is still learning our path) toward -c and
  // exits early; keep trying until the deadline, so the claim stays "N replies within deadlineS".
  const end = Date.now() + deadlineS * 1000;
  for (let attempt = 0; attempt < 50; attempt++) {
    const left = Math.ceil((end - Date.now()) / 1000);
    if (left < 1) return false;
    const args = ['ping', ...(v6 ? ['-6'] : []), '-n', '-q', '-i', '0.2', '-c', String(count), '-w', String(left)];
    const r = await ns.run([...args, addr], { timeoutMs: (left + 5) * 1000 });
    if (r.code === 0) return true;
    await new Promise((res) => setTimeout(res, 250));
  }
  return false;
}

/** Polls probe (every 250 ms, errors count as "not yet") until it returns non-null; throws after ms. */
export async function waitUntil<T>(what: string, ms: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + ms;
  let last = '';
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const v = await probe().catch((e: Error) => {
      last = e.message;
      return null;
    });
    if (v !== null) return v;
    await delay(250);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.slice(0, 2_000)}` : ''}`);
}

/** The directory of the account a daemon's state dir has active (profiles.json names it): its keys and prefs. */
export async function activeProfileDir(stateDir: string): Promise<string> {
  const index = JSON.parse(await readFile(path.join(stateDir, 'profiles.json'), 'utf8')) as { current: string };
  if (!/^[0-9a-f]{4}$/.test(index.current)) throw new Error(`no active profile in ${stateDir}`);
  return path.join(stateDir, 'profiles', index.current);
}

export interface TrellisNodeOptions {
  hostname: string;
  loginServer: string;
  authKey: string;
  tun?: string; // TUN name, default 'trellis0'
  port?: number; // UDP port for WireGuard/disco, default 41641
  env?: Record<string, string>; // extra environment for the daemon
  startTimeoutMs?: number; // bound for the first `status --json` answer, default 20 s
  upTimeoutS?: number; // trellis up --timeout, default 60
  login?: boolean; // false = leave the daemon logged out (the app logs in); default true
  socketGroup?: number; // --socket-group: the socket 0660 for this gid, in a directory the daemon creates
  /** Runs the daemon as this uid (and gid) with no capabilities at all (setpriv); its temp dir is theirs. */
  runAsUid?: number;
  args?: string[]; // extra daemon arguments, e.g. ['--socks5-server', '127.0.0.1:1055']
  /** The node that runs the daemon and the CLI verbs; default the one running the test. */
  node?: string;
  /** The `trellis` script; default TRELLIS_BIN (the sources through tsx), e.g. a bundle's trellis.js instead. */
  trellisBin?: string;
}

/** setpriv's prefix for a process as uid:uid with no groups and no capability (none inheritable, none bounding). */
export function unprivileged(uid: number): string[] {
  const id = String(uid);
  return ['setpriv', `--reuid=${id}`, `--regid=${id}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];
}

export interface TrellisNode {
  readonly ns: Namespace;
  readonly hostname: string;
  readonly tun: string;
  readonly port: number;
  readonly dir: string;
  readonly stateDir: string;
  readonly socket: string;
  readonly process: ManagedProcess;
  /** `trellis <args> --socket <socket>` inside the namespace; never throws for a non-zero exit. */
  cli(args: string[], timeoutMs?: number): Promise<RunResult>;
  status(): Promise<StatusSnapshot>;
  /** Polls status until pred holds; returns the last status either way. */
  waitFor(pred: (s: StatusSnapshot) => boolean, timeoutMs: number): Promise<StatusSnapshot>;
  /** This node's tailnet addresses from status (empty strings when not logged in). */
  ip(): Promise<{ v4: string; v6: string }>;
  /** pingFrom(this node's namespace, addr, opts). */
  ping(addr: string, opts?: PingFromOptions): Promise<boolean>;
  output(): string;
  /** Stops the daemon (SIGTERM, SIGKILL after 3 s) and removes its temp dir. */
  stop(): Promise<void>;
  /** Stops the daemon and starts it again on the same state dir and socket; waits until it answers. */
  restart(): Promise<void>;
}

/** The daemon exited before it answered on its socket (exit code 2: it refused its arguments). */
export class DaemonExitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly output: string,
  ) {
    super(message);
    this.name = 'DaemonExitError';
  }
}

const live = new Map<string, ManagedProcess>(); // temp dir → daemon, for the exit hook
process.on('exit', () => {
  for (const [dir, p] of live) {
    p.signal('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Starts `trellis daemon --tun … --port …` in ns, waits for its socket, then logs in with `trellis up`. */
export async function startTrellisNode(ns: Namespace, opts: TrellisNodeOptions): Promise<TrellisNode> {
  const { lab } = ns;
  if (lab.isClosed) throw new Error('lab already cleaned up; not starting trellis daemon');
  const tun = opts.tun ?? 'trellis0';
  const port = opts.port ?? 41641;
  const node = opts.node ?? process.execPath;
  const bin = opts.trellisBin ?? TRELLIS_BIN;
  // keep the daemon's DNS configuration off the host's resolver (`ip netns exec` bind-mounts this one)
  if (!existsSync(path.join('/etc/netns', ns.name, 'resolv.conf'))) await ns.writeEtc('resolv.conf', RESOLV_CONF);
  const dir = await mkdtemp(path.join(tmpdir(), `trellis-tn-${ns.short}-`));
  const stateDir = path.join(dir, 'state');
  // With a socket group, the daemon makes the socket's directory itself (root:group 0750) and others may pass
  // through the temp dir to reach it.
  const socket = opts.socketGroup === undefined ? path.join(dir, 'd.sock') : path.join(dir, 'run', 'd.sock');
  if (opts.socketGroup !== undefined) await chmod(dir, 0o711);
  const args = ['daemon', '--state-dir', stateDir, '--socket', socket, '--tun', tun, '--port', String(port)];
  if (opts.socketGroup !== undefined) args.push('--socket-group', String(opts.socketGroup));
  args.push(...(opts.args ?? []));
  const env = { ...isolatedEnv(dir), ...opts.env };
  const runAs = opts.runAsUid === undefined ? [] : unprivileged(opts.runAsUid);
  if (opts.runAsUid !== undefined) {
    await ns.exec(['chown', '-R', `${opts.runAsUid}:${opts.runAsUid}`, dir]);
    // The code must be readable by that user: say so plainly rather than fail obscurely in the daemon.
    const r = await ns.run([...runAs, node, bin, '--help'], { timeoutMs: 30_000 });
    if (r.code !== 0) {
      throw new Error(
        `uid ${opts.runAsUid} cannot run ${bin} (is the checkout with node_modules readable by it?): ` +
          r.stderr.trim().slice(0, 500),
      );
    }
  }
  // TRELLIS_CPU_PROF=<dir>: each lab daemon writes a V8 CPU profile there when it stops (what the bench notes cite).
  const profDir = process.env.TRELLIS_CPU_PROF;
  const prof = profDir ? cpuProfileArgs(profDir) : [];
  const spawn = (): ManagedProcess => {
    const p = ns.spawn([...runAs, node, ...prof, bin, ...args], {
      label: `trellis daemon ${opts.hostname}@${ns.short}`,
      env,
    });
    live.set(dir, p);
    void p.exited.then(() => {
      if (lab.isClosed && live.get(dir) === p && live.delete(dir)) rmSync(dir, { recursive: true, force: true });
    });
    return p;
  };
  let proc = spawn();

  const cli = (cmd: string[], timeoutMs = 30_000): Promise<RunResult> =>
    ns.run([node, bin, ...cmd, '--socket', socket], { timeoutMs });
  const describe = (what: string, r: RunResult): string =>
    `trellis ${what} (${opts.hostname}@${ns.name}): ${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}\n` +
    `${r.stderr.trim()}\n${r.stdout.trim()}\n--- daemon output (tail):\n${proc.output().slice(-4_000)}`;
  const status = async (): Promise<StatusSnapshot> => {
    const r = await cli(['status', '--json'], 15_000);
    try {
      if (r.code === 0) return JSON.parse(r.stdout) as StatusSnapshot;
    } catch {}
    throw new Error(describe('status --json', r));
  };
  const stop = async (): Promise<void> => {
    await proc.stop();
    live.delete(dir);
    await rm(dir, { recursive: true, force: true });
  };

  const awaitAnswer = async (): Promise<void> => {
    const startMs = opts.startTimeoutMs ?? 20_000;
    const deadline = Date.now() + startMs;
    let last = '';
    let answered = false;
    while (!answered && Date.now() < deadline && !proc.hasExited) {
      const r = await cli(['status', '--json'], 10_000);
      answered = r.code === 0 && !proc.hasExited;
      last = `${r.stderr.trim()} ${r.stdout.trim()}`.trim().slice(0, 300);
      if (!answered) await delay(200);
    }
    if (!answered) {
      const why = proc.hasExited
        ? `exited (${proc.exitCode ?? proc.exitSignal})`
        : `no status after ${startMs} ms (${last})`;
      const msg = `trellis daemon ${args.join(' ')} in ${ns.name} ${why}\n--- output:\n${proc.output()}`;
      if (proc.hasExited) throw new DaemonExitError(msg, proc.exitCode, proc.output());
      throw new Error(msg);
    }
  };

  try {
    await awaitAnswer();
    const upS = opts.upTimeoutS ?? 60;
    if (opts.login !== false) {
      // As the README says to: the key in a file, not on the command line where ps shows it.
      const keyFile = path.join(dir, 'auth.key');
      await writeFile(keyFile, `${opts.authKey}\n`, { mode: 0o600 });
      const upArgs = [
        'up',
        '--login-server',
        opts.loginServer,
        '--auth-key',
        `file:${keyFile}`,
        '--hostname',
        opts.hostname,
      ];
      const r = await cli([...upArgs, '--timeout', String(upS)], (upS + 15) * 1000);
      if (r.code !== 0) throw new Error(describe('up', r));
    }
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    ns,
    hostname: opts.hostname,
    tun,
    port,
    dir,
    stateDir,
    socket,
    get process() {
      return proc;
    },
    cli,
    status,
    async waitFor(pred, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let s = await status();
      for (let i = 0; i < 10_000 && !pred(s) && Date.now() < deadline; i++) {
        await delay(250);
        s = await status();
      }
      return s;
    },
    async ip() {
      const addrs = (await status()).self?.addresses ?? [];
      return { v4: addrs.find((a) => !a.includes(':')) ?? '', v6: addrs.find((a) => a.includes(':')) ?? '' };
    },
    ping: (addr, o) => pingFrom(ns, addr, o),
    output: () => proc.output(),
    stop,
    async restart() {
      await proc.stop();
      proc = spawn();
      await awaitAnswer();
    },
  };
}
