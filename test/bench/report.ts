// Aggregation and Markdown rendering of the throughput benchmark's results.
import type { Impl, Measurement } from './pairs.ts';

export type PathId = 'tt' | 'tg' | 'gt' | 'gg';

export interface PathInfo {
  label: string;
  sender: Impl;
  receiver: Impl;
}

export const PATHS: Record<PathId, PathInfo> = {
  tt: { label: 'Trellis → Trellis', sender: 'trellis', receiver: 'trellis' },
  tg: { label: 'Trellis → wireguard-go', sender: 'trellis', receiver: 'wggo' },
  gt: { label: 'wireguard-go → Trellis (`-R`)', sender: 'wggo', receiver: 'trellis' },
  gg: { label: 'wireguard-go → wireguard-go (reference)', sender: 'wggo', receiver: 'wggo' },
};

const IMPL_NAME: Record<Impl, string> = { trellis: 'Trellis', wggo: 'wireguard-go' };

export interface Sample extends Measurement {
  path: PathId;
  mtu: number;
  run: number;
}

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  kernel: string;
  node: string;
  wireguardGo: string;
  iperf3: string;
  commit: string;
  engineHash: string;
  date: string;
}

export interface RunInfo {
  seconds: number;
  runs: number;
  mtus: number[];
  wallS: number;
  /** Set when the sources under main/ changed while the benchmark ran. */
  engineChanged: boolean;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? Number.NaN : s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const pct = (cpuS: number, wallS: number) => `${f0((100 * cpuS) / wallS)} %`;

function select(samples: Sample[], path: PathId, mtu: number): Sample[] {
  return samples.filter((s) => s.path === path && s.mtu === mtu);
}

/** Median throughput of a path at an MTU. */
export function medianMbps(samples: Sample[], path: PathId, mtu: number): number {
  return median(select(samples, path, mtu).map((s) => s.mbps));
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The throughput table: median Mbit/s, the single runs, ratio to the reference and per-side CPU. */
export function resultsTable(samples: Sample[], mtus: number[]): string {
  const rows: string[][] = [];
  for (const mtu of mtus) {
    const ref = medianMbps(samples, 'gg', mtu);
    for (const id of Object.keys(PATHS) as PathId[]) {
      const ss = select(samples, id, mtu);
      if (ss.length === 0) continue;
      const mbps = median(ss.map((s) => s.mbps));
      rows.push([
        PATHS[id].label,
        String(mtu),
        `**${f0(mbps)}**`,
        ss.map((s) => f0(s.mbps)).join(', '),
        `${f2(mbps / ref)}×`,
        pct(median(ss.map((s) => s.cpuSenderS)), median(ss.map((s) => s.wallS))),
        f0(median(ss.map((s) => s.mbit / s.cpuSenderS))),
        pct(median(ss.map((s) => s.cpuReceiverS)), median(ss.map((s) => s.wallS))),
        f0(median(ss.map((s) => s.mbit / s.cpuReceiverS))),
        f0(median(ss.map((s) => s.retransmits))),
      ]);
    }
  }
  const header = ['Data path', 'MTU', 'Mbit/s (median)', 'Runs', '× reference', 'Sender CPU', 'Sender Mbit/CPU-s'];
  return table([...header, 'Receiver CPU', 'Receiver Mbit/CPU-s', 'TCP retransmits'], rows);
}

/** Mbit per CPU-second per implementation and role, pooled over every measurement where it had that role. */
export function efficiencyTable(samples: Sample[], mtus: number[]): string {
  const rows = (['trellis', 'wggo'] as Impl[]).map((impl) => {
    const cells = [IMPL_NAME[impl]];
    for (const role of ['sender', 'receiver'] as const) {
      for (const mtu of mtus) {
        const ss = samples.filter((s) => s.mtu === mtu && PATHS[s.path][role] === impl);
        const cpu = ss.reduce((acc, s) => acc + (role === 'sender' ? s.cpuSenderS : s.cpuReceiverS), 0);
        cells.push(f0(ss.reduce((acc, s) => acc + s.mbit, 0) / cpu));
      }
    }
    return cells;
  });
  const cols = ['sender', 'receiver'].flatMap((role) => mtus.map((m) => `As ${role}, MTU ${m}`));
  return table(['Implementation', ...cols], rows);
}

/** One line per MTU: Trellis → Trellis against the reference, and whether the target is met. */
export function targetLines(samples: Sample[], mtus: number[]): string[] {
  return mtus.map((mtu) => {
    const r = medianMbps(samples, 'tt', mtu) / medianMbps(samples, 'gg', mtu);
    return `- MTU ${mtu}: Trellis → Trellis is ${f2(r)}× wireguard-go → wireguard-go — ${r >= 1 ? 'met' : 'not met'}`;
  });
}

export function renderMarkdown(samples: Sample[], m: Machine, run: RunInfo): string {
  const notes = [
    `- This run took ${(run.wallS / 60).toFixed(1)} min.`,
    '- Both namespaces share the same CPUs: each tunnel process competes with the other tunnel, both iperf3',
    '  processes and the kernel. Absolute numbers therefore depend heavily on the core count; the CPU columns',
    '  (100 % = one core fully busy) and Mbit/CPU-s show efficiency independently of that contention.',
    '- Sources under `main/` were fingerprinted before and after the run: ' +
      (run.engineChanged ? '**they changed during the run, so the rows may mix engine versions.**' : 'unchanged.'),
  ];
  return [
    '# Throughput benchmarks',
    '',
    'TCP throughput through a WireGuard tunnel between two Linux network namespaces joined by a veth pair',
    '(outer addresses 192.0.2.1/24 and 192.0.2.2/24, tunnel addresses 203.0.113.1/24 and 203.0.113.2/24),',
    "for Trellis's TypeScript engine (`trellis wg up`) and for wireguard-go, the reference userspace implementation,",
    'in every combination, at tunnel MTU 1280 and 1420. Regenerate this file (as root) with:',
    '',
    '```sh',
    'npm run bench                      # defaults: --seconds 8 --runs 2',
    'npm run bench -- --seconds 5 --runs 1',
    '```',
    '',
    `Each measurement is one \`iperf3 -t ${run.seconds}\` TCP stream from the 192.0.2.1 side (the iperf3 client) to`,
    'the 192.0.2.2 side after a 1 s warm-up ping; `-R` reverses the data direction. Every tunnel is started fresh for',
    `each run, the ${run.runs} run(s) interleave all configurations (alternating their order) so background noise hits`,
    'all of them alike, and the median is reported. "× reference" is the ratio to wireguard-go → wireguard-go at the',
    'same MTU, measured in the same run. CPU is user + system time of each tunnel process (`/proc/<pid>/stat`) while',
    'iperf3 ran; Mbit/CPU-s is the data received divided by that CPU time.',
    '',
    '**Target: Trellis → Trellis ≥ 1.0× wireguard-go → wireguard-go.**',
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpu}, ${m.cores} cores; memory ${m.memGiB.toFixed(1)} GiB`,
    `- Kernel ${m.kernel}; Node ${m.node}; ${m.wireguardGo}; ${m.iperf3}`,
    `- Commit ${m.commit}, \`main/\` fingerprint ${m.engineHash}; ${m.date}`,
    '',
    '## Results',
    '',
    resultsTable(samples, run.mtus),
    '',
    '## Against the target',
    '',
    ...targetLines(samples, run.mtus),
    '',
    '## CPU efficiency (Mbit per CPU-second)',
    '',
    efficiencyTable(samples, run.mtus),
    '',
    '## Notes',
    '',
    ...notes,
    '',
  ].join('\n');
}
