// `npm run bench`, tailnet part: Trellis's engine against the official tailscaled in a Headscale tailnet built from
// network namespaces. (1) iperf3 TCP throughput on a direct LAN path, Trellis → Trellis, Trellis → tailscaled,
// tailscaled → Trellis and tailscaled → tailscaled, interleaved, with each daemon's CPU per packet (and, under
// TRELLIS_CPU_PROF, the top functions of the Trellis daemons' profiles); (2) time from the first packet to a direct
// path behind two easy NATs, Trellis ↔ Trellis, Trellis ↔ tailscaled and tailscaled ↔ tailscaled. Prints the medians
// and writes docs/tailnet-benchmarks.md (--out: elsewhere). Needs root, headscale, tailscaled/tailscale, iperf3 and
// /dev/net/tun.
import { accessSync, constants, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { headscaleBinary } from '../interop/lab/headscale.ts';
import { buildNatLab } from '../interop/lab/nat.ts';
import { Lab } from '../interop/lab/netns.ts';
import { delay, type ManagedProcess } from '../interop/lab/proc.ts';
import { buildTailnetLab } from '../interop/lab/tailnet.ts';
import { tailscaledBinary } from '../interop/lab/tailscaled.ts';
import { missingPrerequisites } from '../interop/lab/tools.ts';
import { ping } from '../interop/lab/traffic.ts';
import { measureAead } from './aead.ts';
import { benchPreamble, firstLine, intOption, machineLines, ROOT, sourceFingerprint } from './common.ts';
import { iperfWithCpu } from './iperf.ts';
import { type ProfileTop, profileFiles, topFunctions } from './profile.ts';
import {
  type BenchNode,
  type Kind,
  type Login,
  liveDirs,
  removeLiveDirs,
  safeView,
  startNode,
} from './tailnet-nodes.ts';
import {
  ceilingLines,
  DIRECT_CONFIGS,
  type DirectId,
  type DirectSample,
  directTable,
  perPacketTable,
  renderMarkdown,
  TPUT_PAIRS,
  type TputId,
  type TputSample,
  targetLines,
  throughputTable,
} from './tailnet-report.ts';

const DOC = path.join(ROOT, 'docs', 'tailnet-benchmarks.md');
const POLL_MS = 100;
/** Bound for one trial's wait for a direct path after the first packet. */
const DIRECT_LIMIT_MS = 15_000;
/** Bound for making a LAN pair go direct before a throughput measurement. */
const LAN_DIRECT_MS = 20_000;
const NETMAP_MS = 30_000;

interface Options {
  seconds: number;
  runs: number;
  trials: number;
  only: 'throughput' | 'direct' | undefined;
  /** Print both daemons' output (tail) after every time-to-direct trial. */
  verbose: boolean;
  /** Where the report goes. */
  out: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      runs: { type: 'string' },
      trials: { type: 'string' },
      only: { type: 'string' },
      verbose: { type: 'boolean' },
      out: { type: 'string' },
    },
  });
  const only = values.only;
  if (only !== undefined && only !== 'throughput' && only !== 'direct') {
    throw new Error(`--only wants throughput or direct, got ${only}`);
  }
  return {
    seconds: intOption('seconds', values.seconds, 8),
    runs: intOption('runs', values.runs, 2, 100),
    trials: intOption('trials', values.trials, 5, 100),
    only,
    verbose: values.verbose === true,
    out: values.out ? path.resolve(values.out) : DOC,
  };
}

function prerequisites(): string[] {
  const missing = missingPrerequisites([
    'headscale',
    'tailscaled',
    'tailscale',
    'ip',
    'iptables',
    'iperf3',
    'ping',
    'ss',
  ]);
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    missing.push('/dev/net/tun');
  }
  if (!existsSync(path.join(ROOT, 'native', 'build', 'Release', 'trellis_tun.node'))) {
    missing.push('the native TUN addon (native/build/Release/trellis_tun.node: npm install)');
  }
  return missing;
}

/** Polls every POLL_MS (at most ms) until probe returns non-null; null on timeout. */
async function poll<T>(ms: number, probe: () => Promise<T | null>): Promise<T | null> {
  const t0 = performance.now();
  for (let i = 0; i <= Math.ceil(ms / POLL_MS) + 10 && performance.now() - t0 <= ms; i++) {
    const tick = performance.now();
    const v = await probe();
    if (v !== null) return v;
    await delay(Math.max(0, POLL_MS - (performance.now() - tick)));
  }
  return null;
}

/** Waits until each node lists the other in its netmap with a way to reach it (PeerView.reachable). */
async function waitNetmap(a: BenchNode, b: BenchNode): Promise<void> {
  let last = '';
  const ok = await poll(NETMAP_MS, async () => {
    const [va, vb] = await Promise.all([safeView(a, b.ip), safeView(b, a.ip)]);
    last = `${a.label}: ${JSON.stringify(va)}, ${b.label}: ${JSON.stringify(vb)}`;
    return va.known && va.reachable && vb.known && vb.reachable ? true : null;
  });
  if (!ok) throw new Error(`${a.label} and ${b.label} did not list each other within ${NETMAP_MS} ms (${last})`);
}

/** A background `ping -i 0.2` from a to b over the tailnet, for at most limitS seconds. */
function pinger(a: BenchNode, b: BenchNode, limitS: number): ManagedProcess {
  const args = ['ping', '-4', '-n', '-i', '0.2', '-W', '1', '-w', String(limitS), b.ip];
  return a.ns.spawn(args, { label: `${a.label}: ping ${b.ip}` });
}

/** Closes the pair's direct path on the lab LAN: ping a → b until both report the other's LAN endpoint. */
async function makeDirect(a: BenchNode, b: BenchNode, lanA: string, lanB: string): Promise<string> {
  const want = { a: `${lanB}:${b.port}`, b: `${lanA}:${a.port}` };
  const p = pinger(a, b, Math.ceil(LAN_DIRECT_MS / 1000) + 2);
  let last = '';
  try {
    const ok = await poll(LAN_DIRECT_MS, async () => {
      const [va, vb] = await Promise.all([safeView(a, b.ip), safeView(b, a.ip)]);
      last = `${a.label} → ${va.direct ?? 'not direct'}, ${b.label} → ${vb.direct ?? 'not direct'}`;
      return va.direct === want.a && vb.direct === want.b ? true : null;
    });
    if (!ok) throw new Error(`${a.label} ↔ ${b.label} not direct on the LAN within ${LAN_DIRECT_MS} ms (${last})`);
    return want.a;
  } finally {
    await p.stop();
  }
}

// ---- part 1: throughput on a direct LAN path ----

interface LanPair {
  id: TputId;
  a: BenchNode;
  b: BenchNode;
  /** LAN addresses of a and b. */
  lan: [string, string];
  endpoint: string;
}

/**
 * Four daemons on one LAN, Trellis a and b, tailscaled a and b; the a's send, the b's receive: Trellis a → Trellis
 * b, Trellis a → tailscaled b, tailscaled a → Trellis b, tailscaled a → tailscaled b. Fills out; returns the pids
 * of Trellis a (always a sender) and Trellis b (always a receiver), whose profiles the report summarizes.
 */
async function throughput(
  seconds: number,
  runs: number,
  out: TputSample[],
): Promise<{ sender?: number; receiver?: number }> {
  const lab = new Lab();
  const nodes: BenchNode[] = [];
  const pids: { sender?: number; receiver?: number } = {};
  try {
    const tn = await buildTailnetLab(lab, ['tra', 'trb', 'tsa', 'tsb']);
    liveDirs.add(tn.headscale.dir);
    const login: Login = { url: tn.headscale.url, authKey: tn.authKey };
    const start = async (kind: Kind, host: string, short: string) => {
      const ns = tn.hosts[host];
      if (!ns) throw new Error(`no lab host ${host}`);
      const n = await startNode(kind, ns, short, login);
      nodes.push(n);
      return n;
    };
    const host: Record<Kind, { a: string; b: string }> = {
      trellis: { a: 'tra', b: 'trb' },
      tailscaled: { a: 'tsa', b: 'tsb' },
    };
    const byHost = new Map<string, BenchNode>();
    for (const kind of ['trellis', 'tailscaled'] as Kind[]) {
      for (const side of ['a', 'b'] as const) byHost.set(host[kind][side], await start(kind, host[kind][side], side));
    }
    const node = (h: string) => byHost.get(h) as BenchNode;
    pids.sender = node('tra').process.pid;
    pids.receiver = node('trb').process.pid;
    const pairs: LanPair[] = [];
    for (const id of Object.keys(TPUT_PAIRS) as TputId[]) {
      const [ha, hb] = [host[TPUT_PAIRS[id].sender].a, host[TPUT_PAIRS[id].receiver].b];
      const [a, b] = [node(ha), node(hb)];
      await waitNetmap(a, b);
      const t0 = performance.now();
      const endpoint = await makeDirect(a, b, tn.addr(ha), tn.addr(hb));
      console.log(`${a.label} ↔ ${b.label}: direct via ${endpoint} after ${(performance.now() - t0).toFixed(0)} ms`);
      pairs.push({ id, a, b, lan: [tn.addr(ha), tn.addr(hb)], endpoint });
    }
    for (let r = 0; r < runs; r++) {
      for (const pair of r % 2 ? [...pairs].reverse() : pairs) {
        const { a, b } = pair;
        const idle = nodes.filter((n) => n !== a && n !== b).map((n) => n.process);
        if (!(await ping(a.ns, b.ip, { count: 5, timeoutS: 3 }))) {
          throw new Error(`warm-up ping ${a.label} → ${b.label} (${b.ip}) failed: the tunnel stopped passing traffic`);
        }
        const before = await safeView(a, b.ip);
        if (before.direct !== pair.endpoint) {
          console.log(`${a.label} → ${b.label}: path is ${before.direct ?? 'not direct'}; making it direct again`);
          pair.endpoint = await makeDirect(a, b, ...pair.lan);
        }
        const res = await iperfWithCpu({
          clientNs: a.ns,
          serverNs: b.ns,
          addr: b.ip,
          seconds,
          watch: [a.process, b.process, ...idle],
        });
        const [va, vb] = await Promise.all([safeView(a, b.ip), safeView(b, a.ip)]);
        const s: TputSample = {
          pair: pair.id,
          run: r,
          mbps: res.mbps,
          mbit: res.mbit,
          retransmits: res.retransmits,
          wallS: res.wallS,
          cpuSenderS: res.cpuS[0] ?? Number.NaN,
          cpuReceiverS: res.cpuS[1] ?? Number.NaN,
          cpuIdleS: res.cpuS.slice(2).reduce((x, y) => x + y, 0),
          endpoint: pair.endpoint,
          stayedDirect: va.direct === pair.endpoint && vb.direct !== null,
          monoUs: res.monoUs,
        };
        out.push(s);
        const cpu = (x: number) => `${((100 * x) / s.wallS).toFixed(0)}%`;
        console.log(
          `[run ${r + 1}/${runs}] ${a.label} → ${b.label}: ${s.mbps.toFixed(0).padStart(5)} Mbit/s  CPU sender ` +
            `${cpu(s.cpuSenderS)} receiver ${cpu(s.cpuReceiverS)} other daemons ${cpu(s.cpuIdleS)}  retransmits ` +
            `${s.retransmits}${s.stayedDirect ? '' : `  LEFT THE DIRECT PATH (now ${va.direct} / ${vb.direct})`}`,
        );
      }
    }
  } catch (err) {
    throw new Error(`throughput: ${(err as Error).message}\n--- process output ---\n${lab.diagnostics()}`);
  } finally {
    for (const n of nodes) await n.stop().catch(() => {});
    await lab.cleanup();
    removeLiveDirs();
  }
  return pids;
}

// ---- part 2: first packet to direct path behind two easy NATs ----

async function directTrial(id: DirectId, trial: number, verbose: boolean): Promise<DirectSample> {
  const cfg = DIRECT_CONFIGS[id];
  const lab = new Lab();
  const nodes: BenchNode[] = [];
  try {
    const nl = await buildNatLab(lab, [
      { name: 'a', nat: 'easy' },
      { name: 'b', nat: 'easy' },
    ]);
    liveDirs.add(nl.tailnet.headscale.dir);
    const login: Login = { url: nl.tailnet.headscale.url, authKey: nl.tailnet.authKey };
    const started = await Promise.allSettled([
      startNode(cfg.a, nl.site('a').host, 'a', login),
      startNode(cfg.b, nl.site('b').host, 'b', login),
    ]);
    for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [a, b] = nodes as [BenchNode, BenchNode];
    await waitNetmap(a, b);

    const sample: DirectSample = { id, trial, msA: null, msB: null, firstReplyMs: null, endpointA: null };
    const t0 = performance.now();
    const p = pinger(a, b, Math.ceil(DIRECT_LIMIT_MS / 1000) + 2);
    try {
      await poll(DIRECT_LIMIT_MS, async () => {
        const now = () => Math.round(performance.now() - t0);
        const [va, vb] = await Promise.all([
          sample.msA === null ? safeView(a, b.ip) : null,
          sample.msB === null ? safeView(b, a.ip) : null,
        ]);
        if (va?.direct) [sample.msA, sample.endpointA] = [now(), va.direct];
        if (vb?.direct) sample.msB = now();
        if (sample.firstReplyMs === null && /bytes from/.test(p.output())) sample.firstReplyMs = now();
        return sample.msA !== null && sample.msB !== null && sample.firstReplyMs !== null ? true : null;
      });
    } finally {
      await p.stop();
    }
    if (verbose) {
      for (const n of [a, b]) console.log(`--- ${n.label} output (tail):\n${n.output().slice(-6_000)}`);
    }
    const pubB = nl.site('b').publicAddr;
    if (sample.endpointA && !sample.endpointA.startsWith(`${pubB}:`)) {
      console.log(`  note: ${a.label} went direct to ${sample.endpointA}, not to b's NAT address ${pubB}`);
    }
    return sample;
  } catch (err) {
    throw new Error(
      `time to direct (${cfg.label}, trial ${trial + 1}): ${(err as Error).message}\n--- process output ---\n${lab.diagnostics()}`,
    );
  } finally {
    for (const n of nodes) await n.stop().catch(() => {});
    await lab.cleanup();
    removeLiveDirs();
  }
}

async function timeToDirect(trials: number, verbose: boolean, out: DirectSample[]): Promise<void> {
  const ids = Object.keys(DIRECT_CONFIGS) as DirectId[];
  for (let t = 0; t < trials; t++) {
    for (const id of t % 2 ? [...ids].reverse() : ids) {
      const s = await directTrial(id, t, verbose);
      out.push(s);
      const ms = (x: number | null) => (x === null ? `not within ${DIRECT_LIMIT_MS} ms` : `${x} ms`);
      console.log(
        `[trial ${t + 1}/${trials}] ${DIRECT_CONFIGS[id].label}: direct after ${ms(s.msA)} (a's view; b's ` +
          `${ms(s.msB)}), first echo reply ${ms(s.firstReplyMs)}${s.endpointA ? `, via ${s.endpointA}` : ''}`,
      );
    }
  }
}

async function main(): Promise<number> {
  const opts = options();
  if (!(await benchPreamble('bench (tailnet)', prerequisites(), removeLiveDirs))) return 1;
  const started = performance.now();
  const fingerprint = sourceFingerprint();
  const versions = [
    `tailscaled ${await firstLine(tailscaledBinary() ?? 'tailscaled', ['--version'])}`,
    await firstLine(headscaleBinary() ?? 'headscale', ['version']),
    await firstLine('iperf3', ['--version']),
    `TCP congestion control ${await firstLine('cat', ['/proc/sys/net/ipv4/tcp_congestion_control'])}`,
  ];
  const machine = await machineLines(fingerprint, versions);
  const { seconds, runs, trials, only, verbose, out } = opts;
  const nPairs = Object.keys(TPUT_PAIRS).length;
  console.log(
    `bench (tailnet): throughput ${only === 'direct' ? 'skipped' : `${runs} run(s) × ${nPairs} pairs × ${seconds} s`}; ` +
      `time to direct ${only === 'throughput' ? 'skipped' : `${trials} trial(s) × 3 pairs`}\n${machine.join('\n')}`,
  );

  const aead = only === 'direct' ? [] : measureAead(1280);
  for (const a of aead) {
    console.log(
      `ChaCha20-Poly1305, 1280 bytes, ${a.impl}: seal ${a.sealUs.toFixed(2)} µs, open ${a.openUs.toFixed(2)} µs`,
    );
  }
  const tput: TputSample[] = [];
  const direct: DirectSample[] = [];
  const profDir = process.env.TRELLIS_CPU_PROF;
  let profile: ProfileTop[] = [];
  try {
    if (only !== 'direct') {
      const pids = await throughput(seconds, runs, tput);
      if (profDir) {
        // Each daemon's profile cut to the measurements it took part in.
        const top = (label: string, pid: number | undefined, kind: 'sender' | 'receiver') => {
          const windows = tput.filter((s) => TPUT_PAIRS[s.pair][kind] === 'trellis').map((s) => s.monoUs);
          return topFunctions(label, pid ? profileFiles(profDir, pid) : [], windows);
        };
        profile = [
          top('Trellis a, the sender (Trellis → Trellis, Trellis → tailscaled)', pids.sender, 'sender'),
          top('Trellis b, the receiver (Trellis → Trellis, tailscaled → Trellis)', pids.receiver, 'receiver'),
        ];
      }
    }
    if (only !== 'throughput') await timeToDirect(trials, verbose, direct);
  } catch (err) {
    console.error(`\nbench (tailnet) FAILED: ${(err as Error).message}`);
    return 1;
  }

  const engineChanged = sourceFingerprint() !== fingerprint;
  const wallS = (performance.now() - started) / 1000;
  const parts = [
    tput.length > 0 ? throughputTable(tput) : '',
    direct.length > 0 ? directTable(direct, DIRECT_LIMIT_MS) : '',
    tput.length > 0 ? perPacketTable(tput, aead) : '',
    [...targetLines(tput, direct, DIRECT_LIMIT_MS), ...ceilingLines(tput, aead)].join('\n'),
  ];
  console.log(`\n${parts.filter(Boolean).join('\n\n')}\n\nwall time ${wallS.toFixed(0)} s`);
  for (const t of profile) {
    const top = t.rows.slice(0, 5).map((r) => `${r.fn} ${((100 * r.selfMs) / t.busyMs).toFixed(1)}%`);
    console.log(`profile, ${t.label} (${t.files} file(s)): ${top.join(', ') || 'none'}`);
  }
  if (engineChanged) console.log('WARNING: sources under main/ changed during the run; rows may mix engine versions');
  const md = renderMarkdown(tput, direct, {
    seconds,
    runs,
    trials,
    limitMs: DIRECT_LIMIT_MS,
    wallS,
    machine,
    engineChanged,
    measured: { throughput: only !== 'direct', direct: only !== 'throughput' },
    aead,
    profile,
  });
  writeFileSync(out, md);
  console.log(`wrote ${path.relative(ROOT, out)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench (tailnet) FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
