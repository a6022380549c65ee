// Shared by the benchmark scripts: command-line numbers, the machine/commit description, the engine fingerprint,
// medians and Markdown tables.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../interop/lab/netns.ts';
import { runCommand } from '../interop/lab/proc.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A whole number from 1 to max given as --name (dflt when absent); throws a usage message otherwise. */
export function intOption(name: string, v: string | undefined, dflt: number, max = 3600): number {
  const n = Number(v ?? dflt);
  if (Number.isInteger(n) && n >= 1 && n <= max) return n;
  throw new Error(`--${name} wants a whole number from 1 to ${max}, got ${v}`);
}

/** sha256 over the file names and contents under main/, to notice an engine edited while the benchmark runs. */
export function sourceFingerprint(): string {
  const dir = path.join(ROOT, 'main');
  const h = createHash('sha256');
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    if (!/\.(ts|mjs|js)$/.test(f) || !statSync(path.join(dir, f)).isFile()) continue;
    h.update(`\0${f}\0`).update(readFileSync(path.join(dir, f)));
  }
  return h.digest('hex').slice(0, 12);
}

/** The first line of a command's output (stdout, else stderr), '?' when there is none. */
export async function firstLine(cmd: string, args: string[]): Promise<string> {
  const r = await runCommand(cmd, args, { timeoutMs: 5_000 });
  return (r.stdout || r.stderr).trim().split('\n')[0] || '?';
}

/** Markdown bullet lines: CPU, memory, kernel, Node and the given tool versions, commit, fingerprint, start time. */
export async function machineLines(fingerprint: string, versions: string[]): Promise<string[]> {
  const cpus = os.cpus();
  const git = (args: string[]) => runCommand('git', ['-C', ROOT, ...args], { timeoutMs: 5_000 });
  const head = await git(['rev-parse', '--short', 'HEAD']);
  const commit = head.code === 0 ? head.stdout.trim() : '? (not a git checkout)';
  const changed = await git(['status', '--porcelain', '--', 'main']);
  const dirty = changed.code === 0 && changed.stdout.trim() ? ', with uncommitted changes under `main/`' : '';
  return [
    `- CPU: ${cpus[0]?.model.trim() ?? '?'}, ${cpus.length} cores; memory ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- Linux ${await firstLine('uname', ['-r'])}; Node ${process.version}; ${versions.join('; ')}`,
    `- Commit ${commit}${dirty} (\`main/\` fingerprint ${fingerprint}); run started ${new Date().toISOString().slice(0, 19)}Z`,
  ];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? Number.NaN) : ((s[m - 1] ?? Number.NaN) + (s[m] ?? Number.NaN)) / 2;
}

/** x with d decimals, '–' when not finite. */
export const fix = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : '–');

export function mdTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * The start every bench shares: false (after naming what is missing) when prerequisites are absent; else a signal
 * hook that runs cleanup ahead of the lab's own (which removes the namespaces and re-raises the signal; this one
 * re-raises when no lab hook is installed yet), and stale lab namespaces of crashed runs removed.
 */
export async function benchPreamble(label: string, missing: string[], cleanup: () => void): Promise<boolean> {
  if (missing.length > 0) {
    console.error(`${label}: missing prerequisites: ${missing.join(', ')} (run test/setup/prereqs.sh as root)`);
    return false;
  }
  const onSignal = (sig: NodeJS.Signals) => {
    cleanup();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
  const stale = await Lab.removeStale();
  if (stale.length > 0) console.log(`removed stale lab namespaces: ${stale.join(', ')}`);
  return true;
}
