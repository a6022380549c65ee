// Medians, ratios and the Markdown report of the throughput benchmark.
import { fix, median, mdTable as table } from './common.ts';
import { IMPL_LABEL, type Impl, type Measurement } from './pairs.ts';
import { type ProfileTop, profileMarkdown } from './profile.ts';

export type PathId = 'tt' | 'tg' | 'gt' | 'gg' | 'dd';
export const PATHS: Record<PathId, { label: string; sender: Impl; receiver: Impl }> = {
  tt: { label: 'Trellis → Trellis', sender: 'trellis', receiver: 'trellis' },
  tg: { label: 'Trellis → wireguard-go (current)', sender: 'trellis', receiver: 'wggo' },
  gt: { label: 'wireguard-go (current) → Trellis (`-R`)', sender: 'wggo', receiver: 'trellis' },
  gg: { label: 'wireguard-go → wireguard-go, current (reference)', sender: 'wggo', receiver: 'wggo' },
  dd: {
    label: 'wireguard-go → wireguard-go, Debian 2022 (second reference)',
    sender: 'wggo-debian',
    receiver: 'wggo-debian',
  },
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
  /** Top functions of Trellis's profiles (TRELLIS_CPU_PROF), empty when no profile was taken. */
  profile: ProfileTop[];
}

const pick = (ss: Sample[], path: PathId, mtu: number) => ss.filter((s) => s.path === path && s.mtu === mtu);
const medianOf = (ss: Sample[], f: (s: Sample) => number) => median(ss.map(f));

/** TCP payload of one full-size segment at a tunnel MTU: MTU − 20 (IPv4) − 32 (TCP with timestamps). */
export const segmentPayload = (mtu: number): number => mtu - 52;

/** CPU µs a tunnel process spent per full-size packet it carried. */
export function usPerPacket(cpuS: number, mbit: number, mtu: number): number {
  return (cpuS * 1e6) / ((mbit * 1e6) / 8 / segmentPayload(mtu));
}

export function resultsTable(samples: Sample[], mtus: number[]): string {
  const rows: string[][] = [];
  for (const mtu of mtus) {
    const ref = medianOf(pick(samples, 'gg', mtu), (s) => s.mbps);
    const floor = medianOf(pick(samples, 'dd', mtu), (s) => s.mbps);
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
        `${fix(mbps / floor, 2)}×`,
        `${fix(medianOf(ss, (s) => (100 * s.cpuSenderS) / s.wallS))} %`,
        fix(
          medianOf(ss, (s) => usPerPacket(s.cpuSenderS, s.mbit, mtu)),
          1,
        ),
        `${fix(medianOf(ss, (s) => (100 * s.cpuReceiverS) / s.wallS))} %`,
        fix(
          medianOf(ss, (s) => usPerPacket(s.cpuReceiverS, s.mbit, mtu)),
          1,
        ),
        fix(medianOf(ss, (s) => s.retransmits)),
      ]);
    }
  }
  const head = ['Data path', 'MTU', 'Mbit/s (median)', 'Runs', '× current wireguard-go', '× Debian wireguard-go'];
  return table(
    [...head, 'Sender CPU', 'Sender µs CPU/packet', 'Receiver CPU', 'Receiver µs CPU/packet', 'TCP retransmits'],
    rows,
  );
}

/** Per implementation and role, pooled over every measurement where it had that role: f(cpu, mbit, mtu). */
function pooledTable(samples: Sample[], mtus: number[], f: (cpuS: number, mbit: number, mtu: number) => string) {
  const rows = (Object.keys(IMPL_LABEL) as Impl[]).map((impl) => [
    IMPL_LABEL[impl],
    ...(['sender', 'receiver'] as const).flatMap((role) =>
      mtus.map((mtu) => {
        const ss = samples.filter((s) => s.mtu === mtu && PATHS[s.path][role] === impl);
        const cpu = ss.reduce((acc, s) => acc + (role === 'sender' ? s.cpuSenderS : s.cpuReceiverS), 0);
        return f(
          cpu,
          ss.reduce((acc, s) => acc + s.mbit, 0),
          mtu,
        );
      }),
    ),
  ]);
  return table(
    ['Implementation', ...['sender', 'receiver'].flatMap((r) => mtus.map((m) => `As ${r}, MTU ${m}`))],
    rows,
  );
}

/** µs of CPU per full-size packet of each implementation in each role. */
export function perPacketTable(samples: Sample[], mtus: number[]): string {
  return pooledTable(samples, mtus, (cpu, mbit, mtu) => fix(usPerPacket(cpu, mbit, mtu), 1));
}

/** Mbit per CPU-second of each implementation in each role. */
function efficiencyTable(samples: Sample[], mtus: number[]): string {
  return pooledTable(samples, mtus, (cpu, mbit) => fix(mbit / cpu));
}

export function targetLines(samples: Sample[], mtus: number[]): string[] {
  return mtus.map((mtu) => {
    const tt = medianOf(pick(samples, 'tt', mtu), (s) => s.mbps);
    const r = tt / medianOf(pick(samples, 'gg', mtu), (s) => s.mbps);
    const floor = tt / medianOf(pick(samples, 'dd', mtu), (s) => s.mbps);
    return (
      `- MTU ${mtu}: Trellis → Trellis is ${fix(r, 2)}× current wireguard-go → wireguard-go: ` +
      `${r >= 1 ? 'met' : '**not met**'} (${fix(floor, 2)}× Debian's 2022 wireguard-go)`
    );
  });
}

export function renderMarkdown(samples: Sample[], run: RunInfo): string {
  const profile =
    run.profile.length > 0
      ? `Profiles of the Trellis → Trellis tunnels of this run (\`node --cpu-prof\`, a sample per 10 ms, through TRELLIS_CPU_PROF, all
threads of each process pooled, both MTUs), counting only the samples taken while iperf3 ran. Self time: the
function itself, not its callees; time in native code (the TUN addon's syscalls, libsodium) counts as the self time
of the JavaScript function that called it. Profiling slows Trellis, so the throughput rows of a profiled run
understate it.

${profileMarkdown(run.profile)}`
      : `_No profile in this run._ \`TRELLIS_CPU_PROF=<dir>\` in the environment makes every \`trellis wg up\` of the
bench write a V8 CPU profile (\`node --cpu-prof\`) into that directory, and this section lists the top functions (self
time) of the Trellis → Trellis sender and receiver.`;
  return `# Throughput benchmarks

TCP throughput through a WireGuard tunnel between two Linux network namespaces joined by a veth pair (outer
addresses 192.0.2.1/24 and 192.0.2.2/24, tunnel addresses 203.0.113.1/24 and 203.0.113.2/24), for Trellis's
engine (\`trellis wg up\`) and wireguard-go, the reference userspace implementation, at tunnel MTU
${run.mtus.join(' and ')}. Two wireguard-go builds run: the **current** one (\`golang.zx2c4.com/wireguard\` at the
version pinned in test/setup/prereqs.sh, installed as \`wireguard-go-current\`; it has TUN and UDP offloads), the
reference of the ratios and of the target, and **Debian's 2022** package (\`/usr/bin/wireguard-go\`, no offloads),
kept as a second row. Regenerate this file as root with \`npm run bench\` (this part alone: \`node --import tsx
test/bench/throughput.ts\`, defaults \`--seconds 8 --runs 2\`; \`--seconds 5 --runs 1\` is a quick pass, \`--out
<file>\` writes the report elsewhere).

Each measurement is one \`iperf3 -t ${run.seconds}\` TCP stream from the 192.0.2.1 side (the iperf3 client) to the
192.0.2.2 side, after a 1 s warm-up ping; \`-R\` reverses the data direction. Every tunnel is started fresh in every
run; the ${run.runs} run(s) interleave all configurations (in alternating order) so background noise hits them alike,
and the table shows the median and the single runs. "× current wireguard-go" is the ratio to the current
wireguard-go → wireguard-go at the same MTU, measured in the same run; "× Debian wireguard-go" the same against
Debian's. CPU is the user + system time of each tunnel process (\`/proc/<pid>/stat\`, all threads) while iperf3
ran, 100 % being one core; µs CPU/packet is that time over the full-size packets carried (data received ÷ MTU − 52
bytes of TCP payload per packet; ACKs the other way are not counted).

**Target: Trellis → Trellis ≥ 1.0× current wireguard-go → wireguard-go, at MTU 1280 and 1420.**

## Machine

${run.machine.join('\n')}

## Results

${resultsTable(samples, run.mtus)}

## Against the target

${targetLines(samples, run.mtus).join('\n')}

## CPU per packet (µs per full-size packet, pooled over all pairings)

${perPacketTable(samples, run.mtus)}

## CPU efficiency (Mbit per CPU-second, pooled over all pairings)

${efficiencyTable(samples, run.mtus)}

## Where Trellis's time goes

${profile}

## Notes

- This run took ${(run.wallS / 60).toFixed(1)} min.
- Both namespaces share the machine's CPUs: each tunnel process competes with the other tunnel, both iperf3
  processes and the kernel, so absolute Mbit/s depend heavily on the core count. The CPU columns and µs CPU/packet
  show each implementation's cost independently of that contention.
- Debian's wireguard-go (v0.0.20220316) predates TUN/UDP offloads; the current one reads the kernel's TCP
  super-packets from the TUN and writes coalesced ones (virtio-net header), and sends and receives UDP in
  GSO/GRO batches. Trellis does the same: TSO split and GSO coalesce on the TUN, equal-sized datagrams sent as one
  UDP_SEGMENT message.
- The sources under \`main/\` were fingerprinted before and after the run: ${run.engineChanged ? '**they changed during the run, so the rows may mix engine versions.**' : 'unchanged.'}
`;
}
