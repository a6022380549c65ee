// Medians, ratios and the Markdown report of the throughput benchmark.
import { fix, median, mdTable as table } from './common.ts';
import type { Impl, Measurement } from './pairs.ts';

export type PathId = 'tt' | 'tg' | 'gt' | 'gg';
export const PATHS: Record<PathId, { label: string; sender: Impl; receiver: Impl }> = {
  tt: { label: 'Trellis → Trellis', sender: 'trellis', receiver: 'trellis' },
  tg: { label: 'Trellis → wireguard-go', sender: 'trellis', receiver: 'wggo' },
  gt: { label: 'wireguard-go → Trellis (`-R`)', sender: 'wggo', receiver: 'trellis' },
  gg: { label: 'wireguard-go → wireguard-go (reference)', sender: 'wggo', receiver: 'wggo' },
};

export interface Sample extends Measurement {
  path: PathId;
  mtu: number;
}

export interface RunInfo {
  seconds: number;
  runs: number;
  mtus: number[];
  wallS: number;
  /** Markdown bullet lines describing the machine and software versions. */
  machine: string[];
  engineChanged: boolean;
}

const pick = (ss: Sample[], path: PathId, mtu: number) => ss.filter((s) => s.path === path && s.mtu === mtu);
const medianOf = (ss: Sample[], f: (s: Sample) => number) => median(ss.map(f));

export function resultsTable(samples: Sample[], mtus: number[]): string {
  const rows: string[][] = [];
  for (const mtu of mtus) {
    const ref = medianOf(pick(samples, 'gg', mtu), (s) => s.mbps);
    for (const id of Object.keys(PATHS) as PathId[]) {
      const ss = pick(samples, id, mtu);
      if (ss.length === 0) continue;
      const mbps = medianOf(ss, (s) => s.mbps);
      rows.push([
        PATHS[id].label,
        String(mtu),
        `**${fix(mbps)}**`,
        ss.map((s) => fix(s.mbps)).join(', '),
        `${fix(mbps / ref, 2)}×`,
        `${fix(medianOf(ss, (s) => (100 * s.cpuSenderS) / s.wallS))} %`,
        fix(medianOf(ss, (s) => s.mbit / s.cpuSenderS)),
        `${fix(medianOf(ss, (s) => (100 * s.cpuReceiverS) / s.wallS))} %`,
        fix(medianOf(ss, (s) => s.mbit / s.cpuReceiverS)),
        fix(medianOf(ss, (s) => s.retransmits)),
      ]);
    }
  }
  const head = ['Data path', 'MTU', 'Mbit/s (median)', 'Runs', '× reference', 'Sender CPU', 'Sender Mbit/CPU-s'];
  return table([...head, 'Receiver CPU', 'Receiver Mbit/CPU-s', 'TCP retransmits'], rows);
}

/** Mbit per CPU-second of each implementation in each role, pooled over every measurement where it had that role. */
function efficiencyTable(samples: Sample[], mtus: number[]): string {
  const rows = (['trellis', 'wggo'] as Impl[]).map((impl) => [
    impl === 'trellis' ? 'Trellis' : 'wireguard-go',
    ...(['sender', 'receiver'] as const).flatMap((role) =>
      mtus.map((mtu) => {
        const ss = samples.filter((s) => s.mtu === mtu && PATHS[s.path][role] === impl);
        const cpu = ss.reduce((acc, s) => acc + (role === 'sender' ? s.cpuSenderS : s.cpuReceiverS), 0);
        return fix(ss.reduce((acc, s) => acc + s.mbit, 0) / cpu);
      }),
    ),
  ]);
  return table(
    ['Implementation', ...['sender', 'receiver'].flatMap((r) => mtus.map((m) => `As ${r}, MTU ${m}`))],
    rows,
  );
}

export function targetLines(samples: Sample[], mtus: number[]): string[] {
  return mtus.map((mtu) => {
    const r = medianOf(pick(samples, 'tt', mtu), (s) => s.mbps) / medianOf(pick(samples, 'gg', mtu), (s) => s.mbps);
    return `- MTU ${mtu}: Trellis → Trellis is ${fix(r, 2)}× wireguard-go → wireguard-go: ${r >= 1 ? 'met' : 'not met'}`;
  });
}

export function renderMarkdown(samples: Sample[], run: RunInfo): string {
  return `# Throughput benchmarks

TCP throughput through a WireGuard tunnel between two Linux network namespaces joined by a veth pair (outer
addresses 192.0.2.1/24 and 192.0.2.2/24, tunnel addresses 203.0.113.1/24 and 203.0.113.2/24), for Trellis's
TypeScript engine (\`trellis wg up\`) and wireguard-go, the reference userspace implementation, in each pairing, at
tunnel MTU ${run.mtus.join(' and ')}. Regenerate this file as root with \`npm run bench\`
(this part alone: \`node --import tsx test/bench/throughput.ts\`, defaults \`--seconds 8 --runs 2\`;
\`--seconds 5 --runs 1\` is a quick pass).

Each measurement is one \`iperf3 -t ${run.seconds}\` TCP stream from the 192.0.2.1 side (the iperf3 client) to the
192.0.2.2 side, after a 1 s warm-up ping; \`-R\` reverses the data direction. Every tunnel is started fresh in every
run; the ${run.runs} run(s) interleave all configurations (in alternating order) so background noise hits them alike,
and the table shows the median and the single runs. "× reference" is the ratio to wireguard-go → wireguard-go at the
same MTU, measured in the same run. CPU is the user + system time of each tunnel process (\`/proc/<pid>/stat\`) while
iperf3 ran, 100 % being one core; Mbit/CPU-s is the data received divided by that CPU time.

**Target: Trellis → Trellis ≥ 1.0× wireguard-go → wireguard-go.**

## Machine

${run.machine.join('\n')}

## Results

${resultsTable(samples, run.mtus)}

## Against the target

${targetLines(samples, run.mtus).join('\n')}

## CPU efficiency (Mbit per CPU-second, pooled over all pairings)

${efficiencyTable(samples, run.mtus)}

## Notes

- This run took ${(run.wallS / 60).toFixed(1)} min.
- Both namespaces share the machine's CPUs: each tunnel process competes with the other tunnel, both iperf3
  processes and the kernel, so absolute Mbit/s depend heavily on the core count. The CPU columns and Mbit/CPU-s show
  each implementation's efficiency independently of that contention.
- Why Trellis can beat a Go implementation here: the Debian wireguard-go (v0.0.20220316) predates TUN/UDP
  offloads, while Trellis reads the kernel's TCP super-packets from the TUN (TSO) and splits them itself, writes
  received TCP to the TUN coalesced into GSO super-packets (one pass through the kernel's TCP stack per up to
  64 KiB either way, and far fewer ACKs back through the tunnel) and sends runs of equal-sized datagrams as one
  UDP_SEGMENT message. Per packet, Trellis is the more expensive of the two.
- Where Trellis's time goes (\`node --cpu-prof\` of the tailnet daemons, TRELLIS_CPU_PROF in
  docs/tailnet-benchmarks.md; this WireGuard path is the same code): with the TypeScript ChaCha20-Poly1305 of
  before issue 13, the cipher took about 40 % of the sender's busy time and half the receiver's. The AEAD is now
  libsodium's (sodium-native); docs/tailnet-benchmarks.md sets its cost per packet against @noble/ciphers' and
  node:crypto's.
- The sources under \`main/\` were fingerprinted before and after the run: ${run.engineChanged ? '**they changed during the run, so the rows may mix engine versions.**' : 'unchanged.'}
`;
}
