// Control-plane benchmarks: applying a 10,000-peer MapResponse (parse + apply + summaries, time and heap).
// Writes docs/control-benchmarks.md. Target: ≤ 100 ms for 10,000 peers.
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { NetMap } from '../../main/engine/control/netmap.ts';
import type { MapResponse } from '../../main/engine/control/tailcfg.ts';
import { peerSummaries } from '../../main/engine/status.ts';
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
  `Machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores; Node ${process.version}; ${new Date().toISOString()}.`,
  '',
];
await writeFile(new URL('../../docs/control-benchmarks.md', import.meta.url), lines.join('\n'));
console.log(lines.join('\n'));
