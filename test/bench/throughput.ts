// `npm run bench`: iperf3 TCP throughput through Trellis and wireguard-go tunnels (the current wireguard-go, the
// reference, and Debian's 2022 one) between two network namespaces at MTU 1280 and 1420, interleaved over several
// runs; prints the medians and writes docs/benchmarks.md (--out: elsewhere). Needs root.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runCommand } from '../interop/lab/proc.ts';
import { missingPrerequisites } from '../interop/lab/tools.ts';
import { benchPreamble, firstLine, intOption, machineLines, ROOT, sourceFingerprint } from './common.ts';
import { type Impl, measure, openPair, type Pair, removeTrellisConfigDirs, WGGO_CURRENT, wggoBinary } from './pairs.ts';
import { type ProfileTop, profileFiles, topFunctions } from './profile.ts';
import {
  PATHS,
  type PathId,
  perPacketTable,
  renderMarkdown,
  resultsTable,
  type Sample,
  targetLines,
} from './report.ts';

const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const MTUS = [1280, 1420];

/** One tunnel setup and the data paths measured on it (the mixed pair carries both directions). */
type Unit = { a: Impl; b: Impl; mtu: number; paths: PathId[] };

function options(): { seconds: number; runs: number; out: string } {
  const { values } = parseArgs({
    options: { seconds: { type: 'string' }, runs: { type: 'string' }, out: { type: 'string' } },
  });
  return {
    seconds: intOption('seconds', values.seconds, 8),
    runs: intOption('runs', values.runs, 2),
    out: values.out ? path.resolve(values.out) : DOC,
  };
}

/** For the report: the first line of --version and the path; for the current one also its module version
 * (`go version -m`, the build info), since its --version names only the source's version constant. */
async function wggoVersion(impl: 'wggo' | 'wggo-debian'): Promise<string> {
  const bin = wggoBinary(impl);
  const line = await firstLine(bin, ['--version']);
  if (impl === 'wggo-debian') return `Debian's ${line} (\`${bin}\`)`;
  let mod = '';
  for (const go of ['go', '/usr/local/go/bin/go']) {
    const r = await runCommand(go, ['version', '-m', bin], { timeoutMs: 10_000 }).catch(() => null);
    const m = r?.code === 0 ? /^\s*mod\s+(\S+)\s+(\S+)/m.exec(r.stdout) : null;
    if (m) {
      mod = `${m[1]}@${m[2]}, `;
      break;
    }
  }
  return `current ${line} (${mod}\`${bin}\`)`;
}

/** Every run visits every unit; odd runs go in reverse order so slow drift does not favour one configuration. */
function schedule(runs: number): Unit[][] {
  const units = MTUS.flatMap((mtu): Unit[] => [
    { a: 'trellis', b: 'trellis', mtu, paths: ['tt'] },
    { a: 'trellis', b: 'wggo', mtu, paths: ['tg', 'gt'] },
    { a: 'wggo', b: 'wggo', mtu, paths: ['gg'] },
    { a: 'wggo-debian', b: 'wggo-debian', mtu, paths: ['dd'] },
  ]);
  const flip = <T>(xs: T[], r: number) => (r % 2 ? [...xs].reverse() : xs);
  return Array.from({ length: runs }, (_, r) => flip(units, r).map((u) => ({ ...u, paths: flip(u.paths, r) })));
}

async function main(): Promise<number> {
  const { seconds, runs, out } = options();
  wggoBinary('wggo'); // puts the Go bin dir on PATH when wireguard-go-current is there and PATH lacks it
  const missing = missingPrerequisites(['wireguard-go', WGGO_CURRENT, 'wg', 'ip', 'iperf3', 'ping', 'ss']);
  if (!(await benchPreamble('bench', missing, removeTrellisConfigDirs))) return 1;
  const started = performance.now();
  const fingerprint = sourceFingerprint();
  const versions = [
    `wireguard-go: ${await wggoVersion('wggo')}; ${await wggoVersion('wggo-debian')}`,
    await firstLine('iperf3', ['--version']),
  ];
  const machine = await machineLines(fingerprint, versions);
  const perRun = schedule(1)[0]?.reduce((n, u) => n + u.paths.length, 0) ?? 0;
  console.log(`bench: ${runs} run(s) × ${perRun} measurements × ${seconds} s\n${machine.join('\n')}`);
  const profDir = process.env.TRELLIS_CPU_PROF;
  /** pids of the Trellis → Trellis sides, whose profiles the report summarizes. */
  const profPids = { sender: [] as number[], receiver: [] as number[] };

  const samples: Sample[] = [];
  for (const [r, units] of schedule(runs).entries()) {
    for (const unit of units) {
      let pair: Pair | undefined;
      try {
        pair = await openPair(unit.a, unit.b, unit.mtu);
        if (unit.a === 'trellis' && unit.b === 'trellis') {
          if (pair.a.proc.pid) profPids.sender.push(pair.a.proc.pid);
          if (pair.b.proc.pid) profPids.receiver.push(pair.b.proc.pid);
        }
        for (const id of unit.paths) {
          const s: Sample = { ...(await measure(pair, seconds, id === 'gt')), path: id, mtu: unit.mtu };
          samples.push(s);
          const cpu = (x: number) => `${((100 * x) / s.wallS).toFixed(0)}%`;
          console.log(
            `[run ${r + 1}/${runs}] ${PATHS[id].label.padEnd(62)} MTU ${s.mtu}: ${s.mbps.toFixed(0).padStart(5)} Mbit/s` +
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
  const profile: ProfileTop[] = profDir
    ? (['sender', 'receiver'] as const).map((role) =>
        topFunctions(
          `Trellis → Trellis, ${role}`,
          profPids[role].flatMap((pid) => profileFiles(profDir, pid)),
          samples.filter((s) => s.path === 'tt').map((s) => s.monoUs),
        ),
      )
    : [];
  console.log(
    `\n${resultsTable(samples, MTUS)}\n\nµs CPU per full-size packet, pooled:\n${perPacketTable(samples, MTUS)}\n\n${targetLines(samples, MTUS).join('\n')}` +
      `\n\nwall time ${wallS.toFixed(0)} s`,
  );
  for (const t of profile) {
    const top = t.rows.slice(0, 5).map((r) => `${r.fn} ${((100 * r.selfMs) / t.busyMs).toFixed(1)}%`);
    console.log(`profile, ${t.label} (${t.files} file(s)): ${top.join(', ') || 'none'}`);
  }
  if (engineChanged) console.log('WARNING: sources under main/ changed during the run; rows may mix engine versions');
  const md = renderMarkdown(samples, { seconds, runs, mtus: MTUS, wallS, machine, engineChanged, profile });
  writeFileSync(out, md);
  console.log(`wrote ${path.relative(ROOT, out)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
