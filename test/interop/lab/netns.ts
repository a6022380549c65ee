// Network-namespace lab for interop tests. Every namespace, veth pair and process the lab creates is owned by
// one Lab; Lab.cleanup() (also run from withLab's finally, t.after and a process 'exit' hook) removes all of it.
// Names carry the full pid of the owning process ("trl<pid><letters>-<short>") so a later run can tell stale
// leftovers of a crashed run from the namespaces of a run that is still alive (node --test runs files in parallel).
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import {
  delay,
  type ExecOptions,
  execCommand,
  ManagedProcess,
  type RunResult,
  runCommand,
  type SpawnOptions,
} from './proc.ts';

export {
  type ExecOptions,
  execCommand,
  ManagedProcess,
  RingBuffer,
  type RunResult,
  runCommand,
  type SpawnOptions,
  withTimeout,
} from './proc.ts';

export const LAB_PREFIX = 'trl';
const NETNS_ETC = '/etc/netns';
const WG_SOCK_DIR = '/var/run/wireguard';

export class Namespace {
  constructor(
    readonly lab: Lab,
    readonly name: string,
    readonly short: string,
  ) {}

  /** Runs `ip netns exec <ns> cmd...`; never throws for a non-zero exit. */
  run(cmd: string[], opts: ExecOptions = {}): Promise<RunResult> {
    return runCommand('ip', ['netns', 'exec', this.name, ...cmd], opts, this.lab.inflight);
  }

  /** Runs `ip netns exec <ns> cmd...` and returns stdout; throws with stderr on failure or timeout. */
  exec(cmd: string[], opts: ExecOptions = {}): Promise<string> {
    return execCommand('ip', ['netns', 'exec', this.name, ...cmd], opts, this.lab.inflight);
  }

  /** Starts a long-running process in the namespace, stopped on lab teardown. */
  spawn(cmd: string[], opts: SpawnOptions = {}): ManagedProcess {
    if (this.lab.isClosed) throw new Error(`lab cleaned up; not starting ${cmd.join(' ')}`);
    const p = new ManagedProcess('ip', ['netns', 'exec', this.name, ...cmd], {
      label: opts.label ?? `${this.short}: ${cmd.join(' ')}`,
      ...(opts.env ? { env: opts.env } : {}),
    });
    this.lab.processes.push(p);
    return p;
  }

  /** Writes /etc/netns/<ns>/<file> (bind-mounted over /etc/<file> by `ip netns exec`); removed on cleanup. */
  async writeEtc(file: string, content: string): Promise<void> {
    const dir = path.join(NETNS_ETC, this.name);
    if (!existsSync(NETNS_ETC)) this.lab.createdEtcRoot = true;
    await mkdir(dir, { recursive: true });
    this.lab.etcDirs.add(dir);
    await writeFile(path.join(dir, file), content);
  }
}

export interface VethAddrs {
  a?: string;
  b?: string;
  a6?: string;
  b6?: string;
}

const liveLabs = new Set<Lab>();
let labCounter = 0;
let hooksInstalled = false;

function letters(n: number): string {
  let s = '';
  let k = n;
  do {
    s = String.fromCharCode(97 + (k % 26)) + s;
    k = Math.floor(k / 26) - 1;
  } while (k >= 0);
  return s;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function syncCleanupAll(): void {
  for (const lab of liveLabs) lab.cleanupSync();
}

function onSignal(sig: NodeJS.Signals): void {
  syncCleanupAll();
  process.removeListener(sig, onSignal);
  process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', syncCleanupAll);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

export class Lab {
  readonly prefix: string;
  readonly namespaces: Namespace[] = [];
  readonly processes: ManagedProcess[] = [];
  readonly inflight = new Set<ChildProcess>();
  readonly etcDirs = new Set<string>();
  /** True when this lab created /etc/netns itself; it is then removed on cleanup if empty. */
  createdEtcRoot = false;
  private vethCount = 0;
  private wgCount = 0;
  private closed = false;

  constructor() {
    this.prefix = `${LAB_PREFIX}${process.pid}${letters(labCounter++)}`;
    liveLabs.add(this);
    installHooks();
  }

  /** Creates namespace `<prefix>-<short>` with lo up. */
  async addNamespace(short: string): Promise<Namespace> {
    if (this.closed) throw new Error('lab already cleaned up');
    if (!/^[a-z0-9]{1,12}$/.test(short)) throw new Error(`namespace short name must be [a-z0-9]{1,12}: ${short}`);
    const ns = new Namespace(this, `${this.prefix}-${short}`, short);
    this.namespaces.push(ns);
    await execCommand('ip', ['netns', 'add', ns.name]);
    if (this.closed) {
      // cleanup ran while `ip netns add` was in flight (e.g. the test timed out)
      await deleteNamespace(ns.name);
      throw new Error('lab cleaned up while adding a namespace');
    }
    await ns.exec(['ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Creates a veth pair between two namespaces, addresses it (IPv6 with nodad) and brings both ends up. */
  async linkVeth(nsA: Namespace, nsB: Namespace, addrs: VethAddrs = {}): Promise<{ ifA: string; ifB: string }> {
    const n = this.vethCount++;
    const ifA = `v${n}-${nsB.short}`.slice(0, 15);
    const ifB = `v${n}-${nsA.short}`.slice(0, 15);
    await execCommand('ip', [
      'link',
      'add',
      'name',
      ifA,
      'netns',
      nsA.name,
      'type',
      'veth',
      'peer',
      'name',
      ifB,
      'netns',
      nsB.name,
    ]);
    const setup = async (ns: Namespace, ifname: string, v4?: string, v6?: string) => {
      if (v4) await ns.exec(['ip', 'addr', 'add', v4, 'dev', ifname]);
      if (v6) await ns.exec(['ip', '-6', 'addr', 'add', v6, 'dev', ifname, 'nodad']);
      await ns.exec(['ip', 'link', 'set', ifname, 'up']);
      await ns.exec(['ip', 'link', 'set', 'lo', 'up']);
    };
    await setup(nsA, ifA, addrs.a, addrs.a6);
    await setup(nsB, ifB, addrs.b, addrs.b6);
    await waitLinkUp(nsA, ifA);
    await waitLinkUp(nsB, ifB);
    return { ifA, ifB };
  }

  /** A fresh interface name owned by this lab (≤ 15 chars), e.g. for wireguard-go, whose UAPI socket path is global. */
  nextIfname(): string {
    const name = `${this.prefix}w${this.wgCount++}`;
    if (name.length > 15) throw new Error(`interface name too long: ${name}`);
    return name;
  }

  /** Output of every managed process, for failure reports. */
  diagnostics(): string {
    return this.processes
      .map(
        (p) =>
          `--- ${p.label} (pid ${p.pid ?? '?'}, ${p.hasExited ? `exited ${p.exitCode ?? p.exitSignal}` : 'running'})\n${p.output()}`,
      )
      .join('\n');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Stops every process, deletes every namespace and /etc/netns dir. Idempotent. Keeps going past a failure and
   * throws at the end; what could not be removed is retried by the process 'exit' hook.
   */
  async cleanup(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.inflight) c.kill('SIGKILL');
    await Promise.all(this.processes.map((p) => p.stop()));
    const errors: string[] = [];
    for (const ns of [...this.namespaces]) {
      try {
        await deleteNamespace(ns.name);
        this.namespaces.splice(this.namespaces.indexOf(ns), 1);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    for (const dir of this.etcDirs) await rm(dir, { recursive: true, force: true });
    this.etcDirs.clear();
    if (this.createdEtcRoot) await rmdir(NETNS_ETC).catch(() => {});
    this.removeOwnSockets();
    if (errors.length > 0) throw new Error(`lab ${this.prefix} cleanup incomplete:\n${errors.join('\n')}`);
    liveLabs.delete(this);
  }

  /** wireguard-go leaves its UAPI socket behind when it had to be SIGKILLed. */
  private removeOwnSockets(): void {
    let entries: string[] = [];
    try {
      entries = readdirSync(WG_SOCK_DIR);
    } catch {}
    const own = new RegExp(`^${this.prefix}w\\d+\\.sock$`);
    for (const e of entries) if (own.test(e)) rmSync(path.join(WG_SOCK_DIR, e), { force: true });
  }

  /** Synchronous last resort for process exit and signals. */
  cleanupSync(): void {
    this.closed = true;
    for (const c of this.inflight) c.kill('SIGKILL');
    for (const p of this.processes) p.signal('SIGKILL');
    for (const ns of this.namespaces.splice(0)) {
      try {
        execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore', timeout: 5_000 });
      } catch {}
    }
    for (const dir of this.etcDirs) rmSync(dir, { recursive: true, force: true });
    this.removeOwnSockets();
    liveLabs.delete(this);
  }

  /** Removes namespaces, /etc/netns dirs and wireguard-go sockets left by dead processes; returns namespace names. */
  static async removeStale(prefix = LAB_PREFIX): Promise<string[]> {
    const owner = new RegExp(`^${prefix}(\\d+)[a-z]+(?:-|w\\d+\\.sock$)`);
    const stale = (name: string) => {
      const m = owner.exec(name);
      if (!m) return false;
      const pid = Number(m[1]);
      return pid !== process.pid && !pidAlive(pid);
    };
    const removed: string[] = [];
    for (const name of await listNamespaces()) {
      if (!stale(name)) continue;
      await deleteNamespace(name);
      removed.push(name);
    }
    for (const dir of [NETNS_ETC, WG_SOCK_DIR]) {
      const entries = await readdir(dir).catch(() => [] as string[]);
      for (const e of entries) if (stale(e)) await rm(path.join(dir, e), { recursive: true, force: true });
    }
    return removed;
  }
}

/** Waits (≤ 3 s) until the device reports carrier and a real qdisc; packets sent before that are dropped. */
export async function waitLinkUp(ns: Namespace, ifname: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let line = '';
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    line = await ns.exec(['ip', '-o', 'link', 'show', 'dev', ifname]);
    if (/[<,]LOWER_UP[,>]/.test(line) && !/qdisc noop/.test(line) && !/state (DOWN|LOWERLAYERDOWN)/.test(line)) return;
    await delay(20);
  }
  throw new Error(`${ifname} in ${ns.name} not up after ${timeoutMs} ms: ${line.trim()}`);
}

/** Names from `ip netns list`. */
export async function listNamespaces(): Promise<string[]> {
  const out = await execCommand('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** Kills whatever still runs in the namespace, then deletes it (a few bounded attempts). */
async function deleteNamespace(name: string): Promise<void> {
  const pids = await runCommand('ip', ['netns', 'pids', name], { timeoutMs: 5_000 });
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    if (pid > 1 && pid !== process.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
  let last = '';
  for (let i = 0; i < 5; i++) {
    const r = await runCommand('ip', ['netns', 'del', name], { timeoutMs: 5_000 });
    if (r.code === 0 || !(await listNamespaces()).includes(name)) return;
    last = r.stderr;
    await delay(200);
  }
  throw new Error(`could not delete namespace ${name}: ${last}`);
}

/**
 * Runs fn with a fresh Lab, after removing stale leftovers. Cleanup runs in finally and again (idempotently) from
 * t.after, so it happens even when the test times out. On failure the managed processes' output is printed.
 */
export async function withLab<T>(t: TestContext, fn: (lab: Lab) => Promise<T>): Promise<T> {
  await Lab.removeStale();
  const lab = new Lab();
  t.after(() => lab.cleanup());
  try {
    return await fn(lab);
  } catch (err) {
    console.error(`[lab ${lab.prefix}] failure; process output:\n${lab.diagnostics()}`);
    throw err;
  } finally {
    await lab.cleanup();
  }
}
