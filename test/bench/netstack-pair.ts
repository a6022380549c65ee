// Bulk TCP between two userspace stacks in one process (a lossless link that hands packets over in batches on
// setImmediate): the stack's own per-segment cost with nothing else in the way. Prints MB/s per run and the median.
//   node --import tsx test/bench/netstack-pair.ts [--mb 200] [--runs 3] [--root DIR (whose netstack to load)]
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { NetStackOptions, NetStack as NetStackType } from '../../main/engine/netstack/stack.ts';
import { intOption, ROOT } from './common.ts';

const { values } = parseArgs({
  options: { mb: { type: 'string' }, runs: { type: 'string' }, root: { type: 'string' } },
});
const MB = intOption('mb', values.mb, 200, 10_000);
const RUNS = intOption('runs', values.runs, 3, 20);
const root = path.resolve(values.root ?? ROOT);
const { NetStack } = (await import(path.join(root, 'main/engine/netstack/stack.ts'))) as {
  NetStack: new (o: NetStackOptions) => NetStackType;
};

function pair(): { a: NetStackType; b: NetStackType } {
  const queue: { to: 'a' | 'b'; p: Uint8Array }[] = [];
  let scheduled = false;
  const s = {} as { a: NetStackType; b: NetStackType };
  const flush = () => {
    scheduled = false;
    const batch = queue.splice(0, queue.length);
    for (const { to, p } of batch) s[to].deliver(p);
  };
  const send = (to: 'a' | 'b', p: Uint8Array) => {
    queue.push({ to, p });
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  s.a = new NetStack({ addresses: ['100.64.0.1'], output: (p) => send('b', p) });
  s.b = new NetStack({ addresses: ['100.64.0.2'], output: (p) => send('a', p) });
  return s;
}

async function once(bytes: number): Promise<{ mbps: number; cpuMsPerMb: number }> {
  const { a, b } = pair();
  let got = 0;
  const done = new Promise<void>((r) => {
    b.listen(9000, (s) => {
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        got += d.length;
      });
      s.on('end', r);
    });
  });
  const c = a.connect('100.64.0.2', 9000);
  c.on('error', () => {});
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const block = Buffer.alloc(1 << 20);
  for (let left = bytes; left > 0; left -= block.length) {
    if (!c.write(left >= block.length ? block : block.subarray(0, left))) await new Promise((r) => c.once('drain', r));
  }
  c.end();
  await done;
  const mbps = bytes / 1e6 / ((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  if (got !== bytes) throw new Error(`got ${got} of ${bytes}`);
  a.close();
  b.close();
  // CPU time per MB moves less than MB/s on a shared machine.
  return { mbps, cpuMsPerMb: (cpu.user + cpu.system) / 1000 / (bytes / 1e6) };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const res: { mbps: number; cpuMsPerMb: number }[] = [];
for (let r = 0; r < RUNS; r++) {
  res.push(await once(MB * 1e6));
  console.log(`run ${r + 1}: ${res[r].mbps.toFixed(1)} MB/s, ${res[r].cpuMsPerMb.toFixed(2)} CPU ms/MB`);
}
const mid = (k: 'mbps' | 'cpuMsPerMb') => median(res.map((x) => x[k])).toFixed(k === 'mbps' ? 1 : 2);
console.log(`median of ${RUNS} (${MB} MB, ${root}): ${mid('mbps')} MB/s, ${mid('cpuMsPerMb')} CPU ms/MB`);
