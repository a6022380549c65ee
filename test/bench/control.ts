// Control-plane benchmarks: applying a 10,000-peer MapResponse (parse + apply + summaries, time and heap).
// Writes docs/control-benchmarks.md. Target: ≤ 100 ms for 10,000 peers.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { NetMap } from '../../main/engine/control/netmap.ts';
import type { MapResponse } from '../../main/engine/control/tailcfg.ts';
import { peerSummaries } from '../../main/engine/core/status.ts';
import { createEngine } from '../../main/engine/engine.ts';
import { startHeadscale } from '../interop/lab/headscale.ts';
import { startDaemon } from '../interop/lab/trellisd.ts';
import { syntheticMapResponse } from './netmap-synthetic.ts';

const PEERS = 10_000;
const RUNS = 7;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const json = syntheticMapResponse(PEERS);
const parseMs: number[] = [];
const applyMs: number[] = [];
const summaryMs: number[] = [];
const heapMiB: number[] = [];
let kept: NetMap | undefined; // holds the last map so the heap figure counts it
for (let r = 0; r < RUNS; r++) {
  globalThis.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const msg = JSON.parse(json) as MapResponse;
  const t1 = performance.now();
  const nm = new NetMap();
  nm.apply(msg);
  const t2 = performance.now();
  const peers = peerSummaries(nm);
  const t3 = performance.now();
  if (peers.length !== PEERS || nm.peers.size !== PEERS) throw new Error('netmap lost peers');
  kept = nm;
  parseMs.push(t1 - t0);
  applyMs.push(t2 - t1);
  summaryMs.push(t3 - t2);
  globalThis.gc?.();
  heapMiB.push((process.memoryUsage().heapUsed - heap0) / 2 ** 20);
  kept = undefined;
}
void kept;
console.error(`totals ms: ${parseMs.map((p, i) => (p + applyMs[i] + summaryMs[i]).toFixed(0)).join(' ')}`);
const applyTotal = median(parseMs.map((p, i) => p + applyMs[i]));
const total = median(parseMs.map((p, i) => p + applyMs[i] + summaryMs[i]));

// Login to Running against a local Headscale: in-process (the engine alone) and through the CLI and daemon
// (what a user waits for, including starting the `trellis` process).
const UP_RUNS = 3;
const engineUpMs: number[] = [];
const cliUpMs: number[] = [];
const hs = await startHeadscale({});
try {
  const user = await hs.createUser('bench');
  const key = await hs.createAuthKey(user, { reusable: true, expiration: '1h' });
  for (let r = 0; r < UP_RUNS; r++) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'trellis-bench-'));
    const engine = createEngine();
    try {
      await engine.handle('start', { stateDir: dir });
      await engine.handle('setPrefs', { controlURL: hs.url, hostname: `bench-e${r}`, wantRunning: true });
      const running = new Promise<void>((resolve) =>
        engine.onEvent((e) => {
          if (e.event === 'state' && e.state === 'Running') resolve();
        }),
      );
      const t0 = performance.now();
      await engine.handle('login', { authKey: key });
      await running;
      engineUpMs.push(performance.now() - t0);
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
    const d = await startDaemon();
    try {
      const t0 = performance.now();
      const res = await d.cli(['up', '--login-server', hs.url, '--auth-key', key, '--hostname', `bench-c${r}`], 60_000);
      if (res.code !== 0) throw new Error(`trellis up failed: ${res.stderr}`);
      cliUpMs.push(performance.now() - t0);
    } finally {
      await d.dispose();
    }
  }
} finally {
  await hs.stop();
}
const lines = [
  '# Control-plane benchmarks',
  '',
  'Regenerate with `npm run bench` (this part: `node --expose-gc --import tsx test/bench/control.ts`).',
  '',
  '## Applying a full MapResponse of 10,000 peers',
  '',
  `A synthetic Headscale-shaped map (${(json.length / 2 ** 20).toFixed(1)} MiB of JSON, ${PEERS} peers with`,
  'addresses, endpoints, Hostinfo and CapMap), taken from bytes to the sorted peer summaries the UI shows.',
  `Median of ${RUNS} runs.`,
  '',
  '| step | ms |',
  '| --- | --- |',
  `| JSON.parse | ${median(parseMs).toFixed(1)} |`,
  `| NetMap.apply | ${median(applyMs).toFixed(1)} |`,
  `| peer summaries (sorted) | ${median(summaryMs).toFixed(1)} |`,
  `| **applied (parse + apply)** | **${applyTotal.toFixed(1)}** |`,
  `| with the UI's peer summaries | ${total.toFixed(1)} |`,
  '',
  `Heap retained by the netmap (first run, after GC): ${heapMiB[0].toFixed(1)} MiB. Target ≤ 100 ms to apply: ${applyTotal <= 100 ? 'met' : '**not met**'}.`,
  '',
  'Peer summaries are cached per peer object, so a later delta touching one peer rebuilds one summary.',
  '',
  '## From login to Running against a local Headscale (v0.29.2, loopback)',
  '',
  `Median of ${UP_RUNS} fresh nodes each.`,
  '',
  '| path | ms |',
  '| --- | --- |',
  `| engine: login command to the Running event | ${median(engineUpMs).toFixed(0)} |`,
  `| \`trellis up --auth-key\` through the daemon, process start to exit | ${median(cliUpMs).toFixed(0)} |`,
  '',
  `Machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores; Node ${process.version}; ${new Date().toISOString()}.`,
  '',
];
await writeFile(new URL('../../docs/control-benchmarks.md', import.meta.url), lines.join('\n'));
console.log(lines.join('\n'));
