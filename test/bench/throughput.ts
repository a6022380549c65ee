// `npm run bench`: iperf3 TCP throughput through Trellis and wireguard-go tunnels between two network namespaces at
// MTU 1280 and 1420, interleaved over several runs; prints the medians and writes docs/benchmarks.md. Needs root.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab } from '../interop/lab/netns.ts';
import { runCommand } from '../interop/lab/proc.ts';
import { missingPrerequisites } from '../interop/lab/tools.ts';
import { type Impl, measure, openPair, type Pair, removeTrellisConfigDirs } from './pairs.ts';
import { PATHS, type PathId, renderMarkdown, resultsTable, type Sample, targetLines } from './report.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const MTUS = [1280, 1420];

/** One tunnel setup and the data paths measured on it (the mixed pair carries both directions). */
type Unit = { a: Impl; b: Impl; mtu: number; paths: PathId[] };

function options(): { seconds: number; runs: number } {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, runs: { type: 'string' } } });
  const int = (name: string, v: string | undefined, dflt: number) => {
    const n = Number(v ?? dflt);
    if (Number.isInteger(n) && n >= 1 && n <= 3600) return n;
    throw new Error(`--${name} wants a whole number from 1 to 3600, got ${v}`);
  };
  return { seconds: int('seconds', values.seconds, 8), runs: int('runs', values.runs, 2) };
}

/** sha256 over the file names and contents under main/, to notice an engine edited while the benchmark runs. */
function sourceFingerprint(): string {
  const dir = path.join(ROOT, 'main');
  const h = createHash('sha256');
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    if (!/\.(ts|mjs|js)$/.test(f) || !statSync(path.join(dir, f)).isFile()) continue;
    h.update(`\0${f}\0`).update(readFileSync(path.join(dir, f)));
  }
  return h.digest('hex').slice(0, 12);
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const r = await runCommand(cmd, args, { timeoutMs: 5_000 });
  return (r.stdout || r.stderr).trim().split('\n')[0] || '?';
}

async function machine(fingerprint: string): Promise<string[]> {
  const cpus = os.cpus();
  const versions = [await firstLine('wireguard-go', ['--version']), await firstLine('iperf3', ['--version'])];
  const commit = await firstLine('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  return [
    `- CPU: ${cpus[0]?.model.trim() ?? '?'}, ${cpus.length} cores; memory ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- Linux ${await firstLine('uname', ['-r'])}; Node ${process.version}; ${versions.join('; ')}`,
    `- Commit ${commit} (\`main/\` fingerprint ${fingerprint}); run started ${new Date().toISOString().slice(0, 19)}Z`,
  ];
}

/** Every run visits every unit; odd runs go in reverse order so slow drift does not favour one configuration. */
function schedule(runs: number): Unit[][] {
  const units = MTUS.flatMap((mtu): Unit[] => [
    { a: 'trellis', b: 'trellis', mtu, paths: ['tt'] },
    { a: 'trellis', b: 'wggo', mtu, paths: ['tg', 'gt'] },
    { a: 'wggo', b: 'wggo', mtu, paths: ['gg'] },
  ]);
  const flip = <T>(xs: T[], r: number) => (r % 2 ? [...xs].reverse() : xs);
  return Array.from({ length: runs }, (_, r) => flip(units, r).map((u) => ({ ...u, paths: flip(u.paths, r) })));
}

async function main(): Promise<number> {
  const { seconds, runs } = options();
  const missing = missingPrerequisites(['wireguard-go', 'wg', 'ip', 'iperf3', 'ping', 'ss']);
  if (missing.length > 0) {
    console.error(`bench: missing prerequisites: ${missing.join(', ')} (run test/setup/prereqs.sh as root)`);
    return 1;
  }
  // Registered before the first Lab exists, so this runs ahead of the lab's own signal hook (which removes the
  // namespaces and re-raises the signal); re-raises itself when no lab hook is installed yet.
  const onSignal = (sig: NodeJS.Signals) => {
    removeTrellisConfigDirs();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
  const started = performance.now();
  const stale = await Lab.removeStale();
  if (stale.length > 0) console.log(`removed stale lab namespaces: ${stale.join(', ')}`);
  const fingerprint = sourceFingerprint();
  const machineLines = await machine(fingerprint);
  console.log(`bench: ${runs} run(s) × 8 measurements × ${seconds} s\n${machineLines.join('\n')}`);

  const samples: Sample[] = [];
  for (const [r, units] of schedule(runs).entries()) {
    for (const unit of units) {
      let pair: Pair | undefined;
      try {
        pair = await openPair(unit.a, unit.b, unit.mtu);
        for (const id of unit.paths) {
          const s: Sample = { ...(await measure(pair, seconds, id === 'gt')), path: id, mtu: unit.mtu };
          samples.push(s);
          const cpu = (x: number) => `${((100 * x) / s.wallS).toFixed(0)}%`;
          console.log(
            `[run ${r + 1}/${runs}] ${PATHS[id].label.padEnd(40)} MTU ${s.mtu}: ${s.mbps.toFixed(0).padStart(5)} Mbit/s` +
              `  CPU sender ${cpu(s.cpuSenderS)} receiver ${cpu(s.cpuReceiverS)}  retransmits ${s.retransmits}`,
          );
        }
      } catch (err) {
        console.error(
          `\nbench FAILED (run ${r + 1}, ${unit.a} ↔ ${unit.b}, MTU ${unit.mtu}): ${(err as Error).message}`,
        );
        if (pair) console.error(`--- process output ---\n${pair.diagnostics()}`);
        return 1;
      } finally {
        await pair?.close();
      }
    }
  }

  const engineChanged = sourceFingerprint() !== fingerprint;
  const wallS = (performance.now() - started) / 1000;
  console.log(
    `\n${resultsTable(samples, MTUS)}\n\n${targetLines(samples, MTUS).join('\n')}\n\nwall time ${wallS.toFixed(0)} s`,
  );
  if (engineChanged) console.log('WARNING: sources under main/ changed during the run; rows may mix engine versions');
  const md = renderMarkdown(samples, { seconds, runs, mtus: MTUS, wallS, machine: machineLines, engineChanged });
  writeFileSync(DOC, md);
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
