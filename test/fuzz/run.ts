// npm run fuzz [-- [--runs N] [--seed S] [target ...]]: runs each fuzz target under Jazzer.js (libFuzzer, with
// coverage from Jazzer's instrumentation of main/engine/), one target at a time, and prints inputs/s and coverage
// per target. Defaults: every target, 1,000,000 inputs each (FUZZ_RUNS overrides, e.g. FUZZ_RUNS=10000 for a
// quick check). The committed seeds in test/fuzz/corpus/<target>/ are read; what the fuzzer learns goes to
// $FUZZ_WORK_DIR (default: <tmp>/trellis-fuzz), as do crashing inputs. Exit status 1 when a target found a crash.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureJazzerLoads } from './glibc-compat.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** Per target: the longest input worth generating (what the real source can hand over, within reason). */
const MAX_LEN: Record<string, number> = {
  'tso-split': 65546, // one TUN read: a 64 KiB super-packet behind the 10-byte virtio_net_hdr
  'tcp-coalesce': 16384,
  'quad100-tcp': 8192,
  'noise-records': 8192,
  netmap: 8192,
};
/**
 * Targets run without --sync: Jazzer then returns to the event loop between inputs. NoiseConn is a stream whose
 * destroy() finishes in process.nextTick; in --sync mode those ticks never run and pile up (RSS grew ~10 KB per input
 * until libFuzzer's 4 GiB limit stopped the first run), which is the harness, not the parser.
 */
const ASYNC = new Set(['noise-records']);
/**
 * tso-split's code under test is native (native/src/tun_offload.cc), out of Jazzer's sight: the target's own branches
 * (what became of each input, how many segments) are instrumented instead, and libFuzzer is told to try long
 * inputs from the start rather than grow them as coverage grows.
 */
const EXTRA_INCLUDES: Record<string, string[]> = { 'tso-split': ['test/fuzz/targets/tso-split'] };
const EXTRA_LIBFUZZER: Record<string, string[]> = { 'tso-split': ['-len_control=0'] };
const DICT: Record<string, string> = { netmap: join(here, 'netmap.dict'), 'dns-query': join(here, 'dns.dict') };

export interface TargetResult {
  target: string;
  runs: number;
  seconds: number;
  execPerSec: number;
  /** libFuzzer's "cov": instrumented edges of main/engine/ hit, of `edges` in the modules the target loaded. */
  cov: number;
  edges: number;
  features: number;
  corpus: string;
  crashed: boolean;
  artifact?: string;
}

function parseArgs(argv: string[]): { runs: number; seed?: number; targets: string[] } {
  let runs = Number(process.env.FUZZ_RUNS ?? 1_000_000);
  let seed: number | undefined;
  const targets: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--seed') seed = Number(argv[++i]);
    else targets.push(argv[i]);
  }
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`bad --runs / FUZZ_RUNS: ${runs}`);
  return { runs, seed, targets };
}

function allTargets(): string[] {
  return readdirSync(join(here, 'targets'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

function runTarget(target: string, runs: number, work: string, seed: number | undefined): Promise<TargetResult> {
  const require = createRequire(import.meta.url);
  const cli = require.resolve('@jazzer.js/core/dist/cli.js');
  const learned = join(work, 'corpus', target);
  mkdirSync(learned, { recursive: true });
  const seeds = join(here, 'corpus', target);
  const libfuzzer = [
    `-runs=${runs}`,
    `-max_len=${MAX_LEN[target] ?? 4096}`,
    `-artifact_prefix=${join(work, `${target}-`)}`,
    '-print_final_stats=1',
    '-rss_limit_mb=4096',
    ...(seed !== undefined ? [`-seed=${seed}`] : []),
    ...(DICT[target] ? [`-dict=${DICT[target]}`] : []),
    ...(EXTRA_LIBFUZZER[target] ?? []),
  ];
  const args = [
    '--import',
    'tsx',
    cli,
    // Jazzer appends ".js" to an extension-less target; tsx maps that back to the .ts file.
    relative(root, join(here, 'targets', target)),
    learned,
    ...(existsSync(seeds) ? [seeds] : []),
    '--includes',
    'main/engine/',
    ...(EXTRA_INCLUDES[target] ?? []).flatMap((p) => ['--includes', p]),
    ...(ASYNC.has(target) ? [] : ['--sync']),
    '--timeout',
    '10000',
    '--',
    ...libfuzzer,
  ];
  const log = join(work, `${target}.log`);
  const out = createWriteStream(log);
  console.log(`fuzz: ${target}: ${runs} inputs (log ${log})`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const take = (d: Buffer) => {
      out.write(d);
      text += d.toString('utf8');
      if (text.length > 1 << 20) text = text.slice(-(1 << 19)); // keep the tail: the final stats are there
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => {
      out.end();
      const done = [...text.matchAll(/^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\S+).*?exec\/s: (\d+)/gm)].at(-1);
      const secs = /^Done (\d+) runs in (\d+) second/m.exec(text);
      const loaded = [...text.matchAll(/Loaded \d+ modules\s+\((\d+) inline 8-bit counters\)/g)].at(-1);
      const avg = /stat::average_exec_per_sec:\s+(\d+)/.exec(text);
      const artifact = /Test unit written to (\S+)/.exec(text)?.[1];
      const crashed = code !== 0 || !done;
      const r: TargetResult = {
        target,
        runs: Number(secs?.[1] ?? done?.[1] ?? 0),
        seconds: Number(secs?.[2] ?? 0),
        execPerSec: Number(avg?.[1] ?? done?.[5] ?? 0),
        cov: Number(done?.[2] ?? 0),
        edges: Number(loaded?.[1] ?? 0),
        features: Number(done?.[3] ?? 0),
        corpus: done?.[4] ?? '',
        crashed,
        ...(artifact ? { artifact } : {}),
      };
      if (crashed) {
        console.log(text.split('\n').slice(-60).join('\n'));
        console.log(`fuzz: ${target}: FINDING (exit ${code})${artifact ? `, input in ${artifact}` : ''}`);
      } else {
        console.log(
          `fuzz: ${target}: ${r.runs} inputs in ${r.seconds} s, ${r.execPerSec} inputs/s, ` +
            `cov ${r.cov} of ${r.edges} edges, ft ${r.features}, corpus ${r.corpus}`,
        );
      }
      resolve(r);
    });
  });
}

async function main(): Promise<void> {
  const { runs, seed, targets: asked } = parseArgs(process.argv.slice(2));
  const known = allTargets();
  const unknown = asked.filter((t) => !known.includes(t));
  if (unknown.length > 0) throw new Error(`unknown target(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
  const targets = asked.length > 0 ? asked : known;
  const work = process.env.FUZZ_WORK_DIR ?? join(tmpdir(), 'trellis-fuzz');
  mkdirSync(work, { recursive: true });
  ensureJazzerLoads();
  const results: TargetResult[] = [];
  for (const t of targets) results.push(await runTarget(t, runs, work, seed));
  const summary = join(work, `summary-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(summary, `${JSON.stringify(results, null, 2)}\n`);
  console.log('\n| target | inputs | seconds | inputs/s | cov (edges hit / instrumented) | ft | corpus |');
  console.log('|---|---:|---:|---:|---:|---:|---|');
  for (const r of results) {
    const cov = r.crashed ? 'FINDING' : `${r.cov} / ${r.edges}`;
    console.log(`| ${r.target} | ${r.runs} | ${r.seconds} | ${r.execPerSec} | ${cov} | ${r.features} | ${r.corpus} |`);
  }
  console.log(`fuzz: summary in ${summary}`);
  const failed = results.filter((r) => r.crashed);
  if (failed.length > 0) {
    console.log(`fuzz: ${failed.length} target(s) with findings: ${failed.map((r) => r.target).join(', ')}`);
    process.exitCode = 1;
  }
}

await main();
