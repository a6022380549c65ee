// `npm run bench`: iperf3 TCP throughput through Trellis and wireguard-go tunnels between two network namespaces at
// MTU 1280 and 1420, interleaved over several runs; prints the medians and writes docs/benchmarks.md. Needs root.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { missingPrerequisites } from '../interop/lab/tools.ts';
import { benchPreamble, firstLine, intOption, machineLines, ROOT, sourceFingerprint } from './common.ts';
import { type Impl, measure, openPair, type Pair, removeTrellisConfigDirs } from './pairs.ts';
import { PATHS, type PathId, renderMarkdown, resultsTable, type Sample, targetLines } from './report.ts';

const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const MTUS = [1280, 1420];

/** One tunnel setup and the data paths measured on it (the mixed pair carries both directions). */
type Unit = { a: Impl; b: Impl; mtu: number; paths: PathId[] };

function options(): { seconds: number; runs: number } {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, runs: { type: 'string' } } });
  return { seconds: intOption('seconds', values.seconds, 8), runs: intOption('runs', values.runs, 2) };
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
  if (!(await benchPreamble('bench', missing, removeTrellisConfigDirs))) return 1;
  const started = performance.now();
  const fingerprint = sourceFingerprint();
  const versions = [await firstLine('wireguard-go', ['--version']), await firstLine('iperf3', ['--version'])];
  const machine = await machineLines(fingerprint, versions);
  console.log(`bench: ${runs} run(s) × 8 measurements × ${seconds} s\n${machine.join('\n')}`);

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
  const md = renderMarkdown(samples, { seconds, runs, mtus: MTUS, wallS, machine, engineChanged });
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
