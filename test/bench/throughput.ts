// `npm run bench`: iperf3 TCP throughput through Trellis and wireguard-go tunnels between two network namespaces,
// at MTU 1280 and 1420, interleaved over several runs; writes the medians to docs/benchmarks.md. Needs root.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab } from '../interop/lab/netns.ts';
import { runCommand } from '../interop/lab/proc.ts';
import { missingPrerequisites } from '../interop/lab/tools.ts';
import { type Impl, measure, openPair, type Pair } from './pairs.ts';
import { type Machine, PATHS, type PathId, renderMarkdown, resultsTable, type Sample, targetLines } from './report.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const MTUS = [1280, 1420];
const TOOLS = ['wireguard-go', 'wg', 'ip', 'iperf3', 'ping', 'ss'];

/** A tunnel setup and the data paths measured on it (the mixed pair carries both directions). */
interface Unit {
  a: Impl;
  b: Impl;
  mtu: number;
  paths: PathId[];
}

function positiveInt(name: string, value: string | undefined, dflt: number): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3600) throw new Error(`--${name} wants a whole number 1..3600, got ${value}`);
  return n;
}

function options(): { seconds: number; runs: number } {
  const { values } = parseArgs({
    options: { seconds: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log('usage: node --import tsx test/bench/throughput.ts [--seconds N (8)] [--runs R (2)]');
    process.exit(0);
  }
  return { seconds: positiveInt('seconds', values.seconds, 8), runs: positiveInt('runs', values.runs, 2) };
}

/** sha256 over the sources under main/ (paths and contents), to notice an engine edited during the run. */
function sourceFingerprint(): string {
  const dir = path.join(ROOT, 'main');
  const h = createHash('sha256');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|mjs|js)$/.test(f) && statSync(path.join(dir, f)).isFile())
    .sort();
  for (const f of files) h.update(`${f}\0`).update(readFileSync(path.join(dir, f))).update('\0');
  return h.digest('hex').slice(0, 12);
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const r = await runCommand(cmd, args, { timeoutMs: 5_000 });
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? '?';
}

async function machine(engineHash: string): Promise<Machine> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? '?',
    cores: cpus.length,
    memGiB: os.totalmem() / 2 ** 30,
    kernel: await firstLine('uname', ['-r']),
    node: process.version,
    wireguardGo: await firstLine('wireguard-go', ['--version']),
    iperf3: await firstLine('iperf3', ['--version']),
    commit: await firstLine('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    engineHash,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

/** Run r visits every unit, in reverse order on every other run so drift does not favour one configuration. */
function schedule(runs: number): Unit[][] {
  const units: Unit[] = [];
  for (const mtu of MTUS) {
    units.push({ a: 'trellis', b: 'trellis', mtu, paths: ['tt'] });
    units.push({ a: 'trellis', b: 'wggo', mtu, paths: ['tg', 'gt'] });
    units.push({ a: 'wggo', b: 'wggo', mtu, paths: ['gg'] });
  }
  return Array.from({ length: runs }, (_, r) =>
    (r % 2 ? [...units].reverse() : units).map((u) => ({ ...u, paths: r % 2 ? [...u.paths].reverse() : u.paths })),
  );
}

function progress(s: Sample, runs: number): string {
  const cpu = (x: number) => `${((100 * x) / s.wallS).toFixed(0)}%`;
  return (
    `[run ${s.run}/${runs}] ${PATHS[s.path].label.padEnd(40)} MTU ${s.mtu}: ${s.mbps.toFixed(0).padStart(5)} Mbit/s` +
    `  CPU sender ${cpu(s.cpuSenderS)} receiver ${cpu(s.cpuReceiverS)}  retransmits ${s.retransmits}`
  );
}

async function main(): Promise<number> {
  const { seconds, runs } = options();
  const missing = missingPrerequisites(TOOLS);
  if (missing.length > 0) {
    console.error(`bench: missing prerequisites: ${missing.join(', ')} (run test/setup/prereqs.sh as root)`);
    return 1;
  }
  const started = performance.now();
  const removed = await Lab.removeStale();
  if (removed.length > 0) console.log(`removed stale lab namespaces: ${removed.join(', ')}`);
  const engineBefore = sourceFingerprint();
  const info = await machine(engineBefore);
  console.log(`bench: ${runs} run(s) × 8 measurements × ${seconds} s; ${info.cpu}, ${info.cores} cores`);

  const samples: Sample[] = [];
  const plan = schedule(runs);
  for (const [r, units] of plan.entries()) {
    for (const unit of units) {
      let pair: Pair | undefined;
      try {
        pair = await openPair(unit.a, unit.b, unit.mtu);
        for (const id of unit.paths) {
          const m = await measure(pair, seconds, id === 'gt');
          const s: Sample = { ...m, path: id, mtu: unit.mtu, run: r + 1 };
          samples.push(s);
          console.log(progress(s, runs));
        }
      } catch (err) {
        const where = `${unit.a} ↔ ${unit.b}, MTU ${unit.mtu}, run ${r + 1}`;
        console.error(`\nbench FAILED (${where}): ${(err as Error).message}`);
        if (pair) console.error(`--- process output ---\n${pair.diagnostics()}`);
        return 1;
      } finally {
        await pair?.close();
      }
    }
  }

  const engineChanged = sourceFingerprint() !== engineBefore;
  const wallS = (performance.now() - started) / 1000;
  console.log(`\n${resultsTable(samples, MTUS)}\n\n${targetLines(samples, MTUS).join('\n')}`);
  console.log(`\nwall time ${wallS.toFixed(0)} s`);
  if (engineChanged) console.log('WARNING: sources under main/ changed during the run; rows may mix engine versions');
  await writeFile(DOC, renderMarkdown(samples, info, { seconds, runs, mtus: MTUS, wallS, engineChanged }));
  console.log(`wrote ${path.relative(ROOT, DOC)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
