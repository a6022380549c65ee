// Medians, ratios and the Markdown report of the tailnet benchmark (test/bench/tailnet.ts).
import { AEAD_LABEL, type AeadCost } from './aead.ts';
import { fix, mdTable, median } from './common.ts';
import { type ProfileTop, profileMarkdown } from './profile.ts';
import { KIND_LABEL, type Kind } from './tailnet-nodes.ts';

/** The throughput pairs: sender a (the iperf3 client) → receiver b, each daemon of either kind. */
export type TputId = 'tt' | 'ts' | 'st' | 'ss';
export const TPUT_PAIRS: Record<TputId, { sender: Kind; receiver: Kind; label: string }> = {
  tt: { sender: 'trellis', receiver: 'trellis', label: 'Trellis → Trellis' },
  ts: { sender: 'trellis', receiver: 'tailscaled', label: 'Trellis → tailscaled' },
  st: { sender: 'tailscaled', receiver: 'trellis', label: 'tailscaled → Trellis' },
  ss: { sender: 'tailscaled', receiver: 'tailscaled', label: 'tailscaled → tailscaled (reference)' },
};
const TPUT_IDS = Object.keys(TPUT_PAIRS) as TputId[];

/** One iperf3 test between two nodes on the lab LAN, a (client, sender) → b. */
export interface TputSample {
  pair: TputId;
  run: number;
  mbps: number;
  mbit: number;
  retransmits: number;
  wallS: number;
  cpuSenderS: number;
  cpuReceiverS: number;
  /** CPU seconds of the two daemons not in this pair during the test. */
  cpuIdleS: number;
  /** The sender's direct endpoint for the receiver before the test. */
  endpoint: string;
  /** Both sides still reported that direct path after the test. */
  stayedDirect: boolean;
  /** When iperf3 ran, µs of CLOCK_MONOTONIC (for cutting the profiles to it). */
  monoUs: [number, number];
}

export type DirectId = 'tt' | 'ts' | 'ss';
export const DIRECT_CONFIGS: Record<DirectId, { a: Kind; b: Kind; label: string }> = {
  tt: { a: 'trellis', b: 'trellis', label: 'Trellis ↔ Trellis' },
  ts: { a: 'trellis', b: 'tailscaled', label: 'Trellis ↔ tailscaled' },
  ss: { a: 'tailscaled', b: 'tailscaled', label: 'tailscaled ↔ tailscaled (reference)' },
};

/** One trial behind two easy NATs: node a pings node b from t = 0 (the first packet). */
export interface DirectSample {
  id: DirectId;
  trial: number;
  /** ms until a reported a direct path to b; null: not within the limit. */
  msA: number | null;
  /** The same from b's side. */
  msB: number | null;
  /** ms until the first echo reply (over whatever path). */
  firstReplyMs: number | null;
  /** a's direct endpoint for b when it went direct. */
  endpointA: string | null;
}

export interface RunInfo {
  seconds: number;
  runs: number;
  trials: number;
  limitMs: number;
  wallS: number;
  /** Markdown bullet lines describing the machine and software versions. */
  machine: string[];
  engineChanged: boolean;
  measured: { throughput: boolean; direct: boolean };
  /** ChaCha20-Poly1305 per TUN-MTU packet, measured before the lab started. */
  aead: AeadCost[];
  /** Top functions of the Trellis daemons' profiles (TRELLIS_CPU_PROF), empty when no profile was taken. */
  profile: ProfileTop[];
}

export const TPUT_TARGET = 1.0;
export const DIRECT_TARGET_MS = 3000;

const tputOf = (ss: TputSample[], id: TputId) => ss.filter((s) => s.pair === id);
const pct = (cpuS: number, wallS: number) => `${fix((100 * cpuS) / wallS)} %`;
/** Median throughput of a pair, NaN without samples. */
const tputMedian = (ss: TputSample[], id: TputId) => median(tputOf(ss, id).map((s) => s.mbps));

export function throughputTable(samples: TputSample[]): string {
  const ref = tputMedian(samples, 'ss');
  const rows = TPUT_IDS.flatMap((k) => {
    const ss = tputOf(samples, k);
    if (ss.length === 0) return [];
    const m = (f: (s: TputSample) => number) => median(ss.map(f));
    const held = ss.filter((s) => s.stayedDirect).length;
    const endpoints = [...new Set(ss.map((s) => s.endpoint))].join(', ');
    return [
      [
        TPUT_PAIRS[k].label,
        `**${fix(m((s) => s.mbps))}**`,
        ss.map((s) => fix(s.mbps)).join(', '),
        `${fix(m((s) => s.mbps) / ref, 2)}×`,
        pct(
          m((s) => s.cpuSenderS / s.wallS),
          1,
        ),
        fix(m((s) => s.mbit / s.cpuSenderS)),
        pct(
          m((s) => s.cpuReceiverS / s.wallS),
          1,
        ),
        fix(m((s) => s.mbit / s.cpuReceiverS)),
        fix(m((s) => s.retransmits)),
        pct(
          m((s) => s.cpuIdleS / s.wallS),
          1,
        ),
        `${endpoints}${held === ss.length ? '' : ` (**left it in ${ss.length - held} of ${ss.length}**)`}`,
      ],
    ];
  });
  const head = ['Data path', 'Mbit/s (median)', 'Runs', '× reference', 'Sender daemon CPU', 'Sender Mbit/CPU-s'];
  return mdTable(
    [...head, 'Receiver daemon CPU', 'Receiver Mbit/CPU-s', 'TCP retransmits', 'Other daemons CPU', 'Direct path'],
    rows,
  );
}

/** TCP payload of one full-size segment at the tailnet MTU: 1280 − 20 (IPv4) − 32 (TCP with timestamps). */
export const SEGMENT_PAYLOAD = 1228;

/** CPU µs a daemon spent per full-size packet it carried. */
function usPerPacket(cpuS: number, mbit: number): number {
  return (cpuS * 1e6) / ((mbit * 1e6) / 8 / SEGMENT_PAYLOAD);
}

/** Median µs of CPU per packet of a pair's sender or receiver daemon, NaN without samples. */
function usMedian(samples: TputSample[], id: TputId, role: 'sender' | 'receiver'): number {
  const ss = tputOf(samples, id);
  return median(ss.map((s) => usPerPacket(role === 'sender' ? s.cpuSenderS : s.cpuReceiverS, s.mbit)));
}

export function perPacketTable(samples: TputSample[], aead: AeadCost[]): string {
  const rows = TPUT_IDS.flatMap((k) => {
    if (tputOf(samples, k).length === 0) return [];
    const { sender, receiver, label } = TPUT_PAIRS[k];
    return [
      [
        label,
        `${fix(usMedian(samples, k, 'sender'), 1)} (${KIND_LABEL[sender]})`,
        `${fix(usMedian(samples, k, 'receiver'), 1)} (${KIND_LABEL[receiver]})`,
      ],
    ];
  });
  const table = mdTable(['Data path', 'Sender daemon, µs CPU per packet', 'Receiver daemon, µs CPU per packet'], rows);
  const aeadRows = aead.map((a) => [AEAD_LABEL[a.impl], fix(a.sealUs, 2), fix(a.openUs, 2)]);
  return `${table}

${mdTable(['ChaCha20-Poly1305, one 1280-byte packet', 'Seal, µs', 'Open, µs'], aeadRows)}`;
}

/** What the AEAD alone costs against tailscaled's whole per-packet budget. */
export function ceilingLines(samples: TputSample[], aead: AeadCost[]): string[] {
  const ts = tputOf(samples, 'ss');
  // The one the daemons run: libsodium, unless the rows say it was not measured.
  const engine = aead.find((a) => a.impl === 'libsodium') ?? aead.find((a) => a.impl === 'noble');
  if (ts.length === 0 || !engine) return [];
  const tsSend = median(ts.map((s) => usPerPacket(s.cpuSenderS, s.mbit)));
  const tsRecv = median(ts.map((s) => usPerPacket(s.cpuReceiverS, s.mbit)));
  return [
    `- tailscaled's sender spent ${fix(tsSend, 1)} µs of CPU per packet on everything (TUN read, WireGuard, UDP send, ` +
      `all its threads); its receiver ${fix(tsRecv, 1)} µs. The ChaCha20-Poly1305 this engine runs, ` +
      `${AEAD_LABEL[engine.impl]}, costs ${fix(engine.sealUs, 2)} µs to seal and ${fix(engine.openUs, 2)} µs to ` +
      `open one packet on one core. A sender whose only work were the seal would match tailscaled's CPU per packet ` +
      `at best ${fix(tsSend / engine.sealUs, 2)}× — the ceiling of the throughput ratio while the machine's cores ` +
      'are all busy, as they are here.',
  ];
}

const msOf = (x: number | null) => x ?? Number.POSITIVE_INFINITY;
const directOf = (ss: DirectSample[], id: DirectId) => ss.filter((s) => s.id === id);
/** Median of a's ms to direct (a trial that never went direct counts as infinitely slow). */
const directMedian = (ss: DirectSample[], id: DirectId) => median(directOf(ss, id).map((s) => msOf(s.msA)));

function msText(x: number, limitMs: number): string {
  if (Number.isNaN(x)) return '–';
  return Number.isFinite(x) ? fix(x) : `> ${limitMs}`;
}

export function directTable(samples: DirectSample[], limitMs: number): string {
  const ref = directMedian(samples, 'ss');
  const rows = (Object.keys(DIRECT_CONFIGS) as DirectId[]).flatMap((id) => {
    const ss = directOf(samples, id);
    if (ss.length === 0) return [];
    const cfg = DIRECT_CONFIGS[id];
    const a = directMedian(samples, id);
    const ratio = Number.isFinite(a) && Number.isFinite(ref) ? `${fix(a / ref, 2)}×` : '–';
    const mB = median(ss.map((s) => msOf(s.msB)));
    const reply = median(ss.map((s) => msOf(s.firstReplyMs)));
    return [
      [
        cfg.label,
        `${KIND_LABEL[cfg.a]} a`,
        `**${msText(a, limitMs)}**`,
        ss.map((s) => (s.msA === null ? 'never' : fix(s.msA))).join(', '),
        ratio,
        `${msText(mB, limitMs)} (${KIND_LABEL[cfg.b]} b)`,
        msText(reply, limitMs),
      ],
    ];
  });
  return mdTable(
    [
      'Pair',
      'Observer (pings)',
      'First packet → direct, ms (median)',
      'Trials',
      '× reference',
      "Peer's view, ms (median)",
      'First echo reply, ms (median)',
    ],
    rows,
  );
}

export function targetLines(tput: TputSample[], direct: DirectSample[], limitMs: number): string[] {
  const lines: string[] = [];
  if (tput.length > 0) {
    const ts = tputMedian(tput, 'ss');
    for (const id of ['tt', 'ts', 'st'] as TputId[]) {
      if (tputOf(tput, id).length === 0) continue;
      const tr = tputMedian(tput, id);
      const r = tr / ts;
      const target =
        id === 'tt' ? `; target ≥ ${fix(TPUT_TARGET, 1)}×: ${r >= TPUT_TARGET ? 'met' : '**not met**'}` : '';
      lines.push(
        `- Throughput, direct path on one LAN: ${TPUT_PAIRS[id].label} ${fix(tr)} Mbit/s is ${fix(r, 2)}× ` +
          `tailscaled → tailscaled (${fix(ts)} Mbit/s) in the same run${target}`,
      );
    }
    if (tputOf(tput, 'tt').length > 0 && tputOf(tput, 'ss').length > 0) {
      for (const role of ['sender', 'receiver'] as const) {
        const [tr, tsd] = [usMedian(tput, 'tt', role), usMedian(tput, 'ss', role)];
        lines.push(
          `- CPU per packet, ${role}: Trellis ${fix(tr, 1)} µs (Trellis → Trellis) against tailscaled ${fix(tsd, 1)} ` +
            `µs (tailscaled → tailscaled); target ≤ tailscaled's: ${tr <= tsd ? 'met' : '**not met**'}`,
        );
      }
    }
  }
  if (direct.length > 0) {
    const ref = directMedian(direct, 'ss');
    for (const id of ['tt', 'ts'] as DirectId[]) {
      if (directOf(direct, id).length === 0) continue;
      const ms = directMedian(direct, id);
      const vsRef =
        Number.isFinite(ms) && Number.isFinite(ref)
          ? `${fix(ms / ref, 2)}× tailscaled ↔ tailscaled (${fix(ref)} ms) in the same run`
          : `tailscaled ↔ tailscaled: ${msText(ref, limitMs)} ms`;
      lines.push(
        `- Time to direct behind two easy NATs, ${DIRECT_CONFIGS[id].label}: ${msText(ms, limitMs)} ms, ${vsRef}; ` +
          `target ≤ ${DIRECT_TARGET_MS} ms: ${ms <= DIRECT_TARGET_MS ? 'met' : '**not met**'}`,
      );
    }
  }
  return lines;
}

export function renderMarkdown(tput: TputSample[], direct: DirectSample[], run: RunInfo): string {
  const notMeasured = '_Not measured in this run._';
  return `# Tailnet benchmarks

A tailnet run by a real Headscale (v0.29.2, with its embedded DERP and STUN) in a lab of Linux network namespaces
(test/interop/lab), Trellis's engine (\`trellis daemon\` with its TUN) against the official \`tailscaled\` with its
TUN. Regenerate this file as root with \`npm run bench\` (this part alone: \`node --import tsx
test/bench/tailnet.ts\`, defaults \`--seconds 8 --runs 2 --trials 5\`; \`--seconds 3 --runs 1 --trials 2\` is a quick
pass, \`--only throughput\` or \`--only direct\` runs one part, \`--verbose\` prints the daemons' logs of every
trial, \`--out <file>\` writes the report elsewhere; \`npm run bench -- <options>\` hands them to this part only, the
last of the chain).
Both clients use a TUN MTU of 1280.

**Targets: Trellis → Trellis throughput ≥ ${fix(TPUT_TARGET, 1)}× tailscaled → tailscaled on a direct path; first
packet to direct path ≤ ${DIRECT_TARGET_MS} ms behind two easy NATs (Trellis ↔ Trellis and Trellis ↔ tailscaled).**

## Machine

${run.machine.join('\n')}

## Throughput on a direct path

Four hosts on one bridge (203.0.113.0/24, Headscale on .1): two Trellis daemons (a and b) and two tailscaled (a and
b), all four in the same tailnet. The a's send and the b's receive, in four pairs: Trellis → Trellis, Trellis →
tailscaled, tailscaled → Trellis and tailscaled → tailscaled (the reference). Before measuring, each pair is made to
use its direct path: a ping runs over the tailnet until both nodes report the other's LAN address as their direct
endpoint (Trellis: status \`path.via = direct\`; tailscaled: \`CurAddr\`). Each measurement is one \`iperf3 -t ${run.seconds}\` TCP stream between the two nodes' tailnet
addresses, after a 1 s warm-up ping; afterwards both sides must still report the same direct path ("Direct path").
The ${run.runs} run(s) alternate the order of the pairs; the daemons stay up across runs. CPU is the user + system
time of each daemon process (all threads, \`/proc/<pid>/stat\`) while iperf3 ran, 100 % being one core; Mbit/CPU-s
is the data received divided by that time. "Other daemons CPU" is what the two daemons outside the pair used
meanwhile (they share the machine).

${tput.length > 0 ? throughputTable(tput) : notMeasured}

### Per packet

CPU per packet is each daemon's CPU time over the full-size packets it carried (data received ÷ ${SEGMENT_PAYLOAD}
bytes of TCP payload per 1280-byte packet; ACKs the other way are not counted). The AEAD rows were measured on
one core before the lab started: the median of 5 rounds of 20,000 packets (5,000 for @noble/ciphers).

${tput.length > 0 ? perPacketTable(tput, run.aead) : notMeasured}

### Where Trellis's time goes

${
  run.profile.length > 0
    ? `Top functions by self time (the function itself, not its callees) of the two Trellis daemons' V8 CPU profiles
(\`node --cpu-prof\`, a sample per 10 ms, through TRELLIS_CPU_PROF, all threads of a daemon pooled), counting only the samples taken while
iperf3 ran through that daemon; time in native code (the TUN addon's syscalls, libsodium) counts as the self time of
the JavaScript function that called it. Profiling slows Trellis, so the throughput rows of a profiled run understate
it.

${profileMarkdown(run.profile)}`
    : `_No profile in this run._ With \`TRELLIS_CPU_PROF=<dir>\` in the environment every Trellis daemon of the lab
writes a V8 CPU profile into that directory, and this section lists the top functions (self time) of Trellis a (the
sender) and Trellis b (the receiver).`
}

## First packet to direct path behind two easy NATs

Two sites, each a host behind its own router doing endpoint-independent NAT (\`MASQUERADE\`, lab/nat.ts "easy"),
Headscale with DERP and STUN on the "internet" between them; a fresh lab per trial. Both nodes are started and
logged in, and once each lists the other in its netmap with a way to reach it (Trellis: status shows a DERP or
direct path; tailscaled: the peer's home DERP region is known — before that tailscaled drops its first WireGuard
handshake, "no UDP or DERP addr", and retries 5 s later, which would time control-plane lag rather than path
discovery), node a starts \`ping -i 0.2\` to b's tailnet address: that is t = 0, the first packet. Then both nodes'
status is polled every 100 ms (Trellis over its daemon socket, tailscaled with \`tailscale status --json\`, a few
tens of ms per call) until each reports a direct path to the other (limit ${run.limitMs} ms; "never" in a trial
means not within it). "First packet → direct" is what node a reports, "Peer's view" what b reports.
${run.trials} trial(s) per pair, interleaved in alternating order.

${direct.length > 0 ? directTable(direct, run.limitMs) : notMeasured}

## Against the targets

${[...targetLines(tput, direct, run.limitMs), ...ceilingLines(tput, run.aead)].join('\n') || notMeasured}

## Notes

- This run took ${(run.wallS / 60).toFixed(1)} min.
- \`TRELLIS_CPU_PROF=<dir>\` in the environment makes every Trellis daemon of the lab write a V8 CPU profile
  (\`node --cpu-prof\`, one file per thread) into that directory when it stops; the throughput part's two are
  summarized above.
- All daemons, iperf3, Headscale and the kernel share the machine's cores, so absolute Mbit/s depend on the core
  count and on whatever else runs; the ratio is measured in the same run, interleaved, to cancel most of that.
- What bounds the times to direct: when a's first disco pings reach b's NAT before b has sent anything to a, they
  are dropped; b, told by a's CallMeMaybe (through DERP), pings a and goes direct on a's answer, but a goes direct
  only when it pings b again. tailscaled waits at least 5 s between pings to an endpoint
  (\`tsconst.DefaultPingInterval\`, v1.102.3), so a reference trial is either fast (its first round got through)
  or about 5 s on a's side; with few trials its median can land on either, so the ratio against it says less here
  than for throughput, and the 3000 ms target is absolute.
- The sources under \`main/\` were fingerprinted before and after the run: ${run.engineChanged ? '**they changed during the run, so the rows may mix engine versions.**' : 'unchanged.'}
`;
}
