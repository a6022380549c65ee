// Medians, ratios and the Markdown report of the userspace-networking benchmark (userspace.ts).
import { fix, mdTable, median } from './common.ts';
import { type ProfileTop, profileMarkdown } from './profile.ts';

export type ProxyClient = 'tailscaled' | 'trellis';
export type Direction = 'down' | 'up';

export const CLIENT_LABEL: Record<ProxyClient, string> = {
  tailscaled: 'tailscaled `--tun=userspace-networking` (reference)',
  trellis: 'Trellis `--tun userspace-networking`',
};
export const DIRECTION_LABEL: Record<Direction, string> = {
  down: 'download (server → client)',
  up: 'upload (client → server)',
};
export const TARGET = 1.0;
const TUN_LABEL = 'tailscaled (TUN) ↔ tailscaled S, iperf3';
/** The uid the Trellis client runs as. */
export const NOBODY_UID = 65534;

/** What S's TUN carried during a transfer: packets (and their bytes) in the data's direction, packets the other way. */
export interface Packets {
  data: number;
  dataBytes: number;
  acks: number;
}

/** One curl transfer through a client's SOCKS5 proxy to the server peer, or one iperf3 test of the TUN pair. */
export interface Sample {
  direction: Direction;
  run: number;
  mbps: number;
  /** MB (10⁶ bytes) that arrived. */
  mb: number;
  /** CPU seconds (user + system) of the client's daemon and of the server's tailscaled during the transfer. */
  cpuClientS: number;
  cpuServerS: number;
  packets: Packets;
}

export interface ProxySample extends Sample {
  client: ProxyClient;
}

/** Whether the Trellis row ran: its daemon refuses the userspace flags on a branch that lacks them. */
export type TrellisRow = { available: true } | { available: false; reason: string };

export interface RunInfo {
  runs: number;
  mb: number;
  seconds: number;
  wallS: number;
  machine: string[];
  trellis: TrellisRow;
  /** What the Trellis row runs, one Markdown line per command. */
  trellisCommands: string[];
  engineChanged: boolean;
  /** Top functions of the Trellis daemon's profile (TRELLIS_CPU_PROF) over its transfers; empty without one. */
  profile: ProfileTop[];
}

const msPerMb = (s: Sample, cpu: number) => (1000 * cpu) / s.mb;
const medianMbps = (ss: Sample[]) => median(ss.map((s) => s.mbps));

function pick(ss: ProxySample[], client: ProxyClient, direction: Direction): ProxySample[] {
  return ss.filter((s) => s.client === client && s.direction === direction);
}

/** Trellis ÷ tailscaled (userspace) per direction, NaN where either has no sample. */
export function ratio(ss: ProxySample[], direction: Direction): number {
  return medianMbps(pick(ss, 'trellis', direction)) / medianMbps(pick(ss, 'tailscaled', direction));
}

function cells(ss: Sample[]): string[] {
  return [
    `**${fix(medianMbps(ss))}**`,
    ss.map((s) => fix(s.mbps)).join(', '),
    fix(median(ss.map((s) => msPerMb(s, s.cpuClientS))), 1),
    fix(median(ss.map((s) => msPerMb(s, s.cpuServerS))), 1),
  ];
}

export function proxyTable(ss: ProxySample[], trellis: TrellisRow): string {
  const rows: string[][] = [];
  for (const client of ['tailscaled', 'trellis'] as const) {
    for (const direction of ['down', 'up'] as const) {
      const head = [CLIENT_LABEL[client], DIRECTION_LABEL[direction]];
      if (client === 'trellis' && !trellis.available) {
        rows.push([...head, 'not available', '–', '–', '–', '–']);
        continue;
      }
      const picked = pick(ss, client, direction);
      const x = client === 'trellis' ? `${fix(ratio(ss, direction), 2)}×` : '1.00×';
      const [mbps = '', runs = '', cpuC = '', cpuS = ''] = cells(picked);
      rows.push([...head, mbps, runs, x, cpuC, cpuS]);
    }
  }
  return mdTable(
    [
      'Client (SOCKS5 at 127.0.0.1:1055)',
      'Direction',
      'Mbit/s (median)',
      'Runs',
      '× tailscaled userspace',
      'Client daemon CPU ms/MB',
      'Server tailscaled CPU ms/MB',
    ],
    rows,
  );
}

/** Packets per MB at S's TUN, both directions, and the data packets' mean size, for every client and direction. */
export function packetTable(ss: ProxySample[], tun: Sample[], trellis: TrellisRow): string {
  const row = (label: string, direction: Direction, picked: Sample[]) => {
    const per = (f: (s: Sample) => number) => median(picked.map(f));
    return [
      label,
      DIRECTION_LABEL[direction],
      fix(per((s) => s.packets.data / s.mb)),
      fix(per((s) => s.packets.dataBytes / s.packets.data)),
      fix(per((s) => s.packets.acks / s.mb)),
    ];
  };
  const rows: string[][] = [];
  for (const client of ['tailscaled', 'trellis'] as const) {
    if (client === 'trellis' && !trellis.available) continue;
    for (const direction of ['down', 'up'] as const)
      rows.push(row(CLIENT_LABEL[client], direction, pick(ss, client, direction)));
  }
  for (const direction of ['down', 'up'] as const) {
    rows.push(
      row(
        TUN_LABEL,
        direction,
        tun.filter((s) => s.direction === direction),
      ),
    );
  }
  return mdTable(
    ['Client', 'Direction', 'Data packets/MB', 'Bytes per data packet', 'Packets/MB the other way (mostly ACKs)'],
    rows,
  );
}

export function tunTable(ss: Sample[]): string {
  const rows = (['down', 'up'] as const).map((direction) => [
    TUN_LABEL,
    DIRECTION_LABEL[direction],
    ...cells(ss.filter((s) => s.direction === direction)),
  ]);
  return mdTable(
    ['Pair', 'Direction', 'Mbit/s (median)', 'Runs', 'Client daemon CPU ms/MB', 'Server tailscaled CPU ms/MB'],
    rows,
  );
}

export function targetLines(ss: ProxySample[], trellis: TrellisRow): string[] {
  return (['down', 'up'] as const).map((direction) => {
    const head = `- ${DIRECTION_LABEL[direction]}: Trellis through its SOCKS5 proxy`;
    if (!trellis.available) return `${head}: **not measured** (${trellis.reason})`;
    const r = ratio(ss, direction);
    return `${head} is ${fix(r, 2)}× tailscaled's userspace mode; target ≥ ${TARGET.toFixed(1)}×: ${r >= TARGET ? 'met' : '**not met**'}`;
  });
}

export function renderMarkdown(ss: ProxySample[], tun: Sample[], run: RunInfo): string {
  return `# Userspace-networking benchmarks

Throughput through the SOCKS5 proxy of a client in userspace-networking mode (no TUN: the daemon's own TCP/IP
stack carries the tailnet's packets), Trellis against tailscaled doing the same, in one run on one machine. The
lab (test/interop/lab): Headscale, a server peer S — tailscaled with a TUN, and \`bulk-http.mjs\` (Node's HTTP
server) listening on port 8080 in its namespace — and three clients, each in a namespace of its own on the same
bridge, all on direct paths to S. Regenerate as root with \`npm run bench\` (this part alone: \`node --import tsx
test/bench/userspace.ts [--runs N] [--mb N] [--seconds N] [--out FILE]\`; defaults \`--runs 2 --mb 200 --seconds 6\`).

**Target (issue 15): Trellis ≥ ${TARGET.toFixed(1)}× tailscaled's userspace mode, each direction.**

## Machine

${run.machine.join('\n')}

## Through the SOCKS5 proxy

Each run, for each client (the order alternates between runs): \`curl --socks5-hostname 127.0.0.1:1055\` in the
client's namespace downloads ${run.mb} MB from \`http://ts-s.tailnet.test:8080/bytes/${run.mb * 1_000_000}\` (the
name resolved by the proxy through MagicDNS; the body goes to /dev/null) and then uploads a ${run.mb} MB file of random
bytes with \`curl -T\` to \`/sink\`, which answers how many bytes it read. Mbit/s is the bytes that arrived over
curl's \`time_total\`; a transfer with fewer bytes than asked for fails the bench. CPU is the user + system time
(\`/proc/<pid>/stat\`, all threads) of the client's daemon and of S's tailscaled while curl ran, per MB moved.

${proxyTable(ss, run.trellis)}

${targetLines(ss, run.trellis).join('\n')}

Packets through S's TUN (\`/sys/class/net/ts-s/statistics\`) during each transfer, per MB moved (medians): how often
the client acknowledges and how the data arrives, which S's CPU per MB follows. S's tailscaled takes the kernel's
TSO super-packets from its TUN and writes coalesced ones into it (GRO), so a data packet here is a batch of
segments, not one segment on the wire. The last two rows are the TUN pair's iperf3 tests below.

${packetTable(ss, tun, run.trellis)}

What each client runs:

- tailscaled: \`tailscaled --tun=userspace-networking --socks5-server=127.0.0.1:1055 --port=41641\` (state and socket
  in a temp dir, \`TS_DEBUG_USE_DERP_HTTP=1\`), then \`tailscale up --login-server … --auth-key … --hostname
  ts-user --accept-dns=false\`.
- Trellis, as uid ${NOBODY_UID} with no groups and no capabilities, HOME and XDG_CONFIG_HOME in its temp dir (owned by that
  uid), then logged in by root over the daemon's socket:
${run.trellisCommands.map((c) => `  - ${c}`).join('\n')}

${
  run.trellis.available
    ? ''
    : `The Trellis row did not run: ${run.trellis.reason}, so this build has no userspace mode yet. The row runs
unchanged once \`trellis daemon\` takes \`--tun userspace-networking\` and \`--socks5-server\`.\n\n`
}## Where Trellis's time goes

${
  run.profile.length > 0
    ? `The Trellis client daemon's V8 CPU profile (\`node --cpu-prof\`, a sample per 10 ms, all threads pooled), counting
only the samples taken while its curl transfers ran. Self time: the function itself, not its callees. Profiling
slows Trellis, so the Trellis rows of a profiled run understate it.

${profileMarkdown(run.profile)}`
    : `_No profile in this run._ \`TRELLIS_CPU_PROF=<dir>\` (a directory uid ${NOBODY_UID} may write) makes the Trellis daemon
write a V8 CPU profile there, and this section lists its top functions during the transfers.`
}

## For context: the same server over a TUN

A tailscaled client with a TUN in a fourth namespace and S: one \`iperf3 -t ${run.seconds}\` TCP stream each way
over the tailnet (download: \`-R\`, S sends). No proxy and no userspace stack: the kernel's TCP on both ends.

${tunTable(tun)}

## Notes

- This run took ${(run.wallS / 60).toFixed(1)} min.
- Every namespace shares the machine's CPUs: curl, the client's daemon, S's tailscaled and the HTTP server compete
  with each other (and with whatever else the machine runs), so absolute Mbit/s depend on the core count and the
  load; the CPU columns show each daemon's cost independently of that.
- The idle clients stay up during another client's transfer (their daemons' idle cost is in the machine's load,
  not in any row's CPU column).
- The sources under \`main/\` were fingerprinted before and after the run: ${run.engineChanged ? '**they changed during the run, so the rows may mix engine versions.**' : 'unchanged.'}
`;
}
