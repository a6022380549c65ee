// Child-process plumbing for the lab: bounded execFile runs and managed long-running processes whose output is
// kept in a ring buffer for diagnostics.
import { type ChildProcess, execFile, spawn } from 'node:child_process';

const DEFAULT_TIMEOUT_MS = 15_000;
const KILL_GRACE_MS = 3_000;
const RING_BYTES = 64 * 1024;

export interface ExecOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Label used in diagnostics; defaults to the command. */
  label?: string;
}

/** Runs a command (execFile, bounded by a timeout) and never throws for a non-zero exit. */
export function runCommand(
  file: string,
  args: string[],
  opts: ExecOptions = {},
  track?: Set<ChildProcess>,
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      },
      (err, stdout, stderr) => {
        track?.delete(child);
        const e = err as
          | (NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals | null })
          | null;
        let code: number | null = 0;
        if (e) code = typeof e.code === 'number' ? e.code : null;
        const spawnError = e && typeof e.code === 'string' ? `${e.message}\n` : '';
        resolve({
          code,
          signal: e?.signal ?? null,
          stdout,
          stderr: spawnError + stderr,
          timedOut: Boolean(e?.killed && e.signal === 'SIGKILL'),
        });
      },
    );
    track?.add(child);
    child.stdin?.on('error', () => {});
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Like runCommand but resolves stdout and throws (with stderr) on failure. */
export async function execCommand(
  file: string,
  args: string[],
  opts: ExecOptions = {},
  track?: Set<ChildProcess>,
): Promise<string> {
  const r = await runCommand(file, args, opts, track);
  if (r.code !== 0) {
    const why = r.timedOut
      ? `timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`
      : `exit ${r.code ?? r.signal}`;
    throw new Error(`${[file, ...args].join(' ')}: ${why}\n${r.stderr.trim()}\n${r.stdout.trim()}`.trim());
  }
  return r.stdout;
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves with the promise's value, or 'timeout' after ms; the timer is cleared either way. */
export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keeps the last `cap` bytes of text written to it. */
export class RingBuffer {
  private chunks: string[] = [];
  private size = 0;
  constructor(private readonly cap = RING_BYTES) {}
  push(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > this.cap && this.chunks.length > 1) this.size -= (this.chunks.shift() as string).length;
  }
  toString(): string {
    const all = this.chunks.join('');
    return all.length > this.cap ? all.slice(all.length - this.cap) : all;
  }
}

/** A process started inside a namespace; its output is kept for diagnostics, and the lab stops it on teardown. */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly label: string;
  readonly log = new RingBuffer();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  hasExited = false;

  constructor(file: string, args: string[], opts: SpawnOptions) {
    this.label = opts.label ?? [file, ...args].join(' ');
    this.child = spawn(file, args, {
      detached: true, // own process group, so stop() reaches anything it forks
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => this.log.push(d));
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => this.log.push(d));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        this.log.push(`[spawn error] ${err.message}\n`);
        this.hasExited = true;
        resolve({ code: null, signal: null });
      });
      this.child.on('exit', (code, signal) => {
        this.hasExited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  output(): string {
    return this.log.toString();
  }

  /** Resolves true when the accumulated output matches, false when the process exits or the time is up. */
  async waitForOutput(re: RegExp, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
      if (re.test(this.output())) return true;
      if (this.hasExited) return re.test(this.output());
      await delay(20);
    }
    return re.test(this.output());
  }

  signal(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined || this.hasExited) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {}
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited (bounded). */
  async stop(graceMs = KILL_GRACE_MS): Promise<void> {
    if (this.hasExited || this.child.pid === undefined) return;
    this.signal('SIGTERM');
    if ((await withTimeout(this.exited, graceMs)) !== 'timeout') return;
    this.signal('SIGKILL');
    await withTimeout(this.exited, 2_000);
  }
}
