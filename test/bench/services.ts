// `npm run bench`, services part: Taildrop throughput of a 1 GB file from Trellis to tailscaled and to another
// Trellis, each against the tunnel's own iperf3 figure for the same pair measured just before it (target ≥ 90 %),
// and quad-100 queries per second on Trellis against tailscaled's quad-100 on the same machine. Writes
// docs/services-benchmarks.md (--out: elsewhere).
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connectDaemon } from '../../main/engine/ipc/daemon-client.ts';
import { sendLocalFile } from '../../main/engine/taildrop/client-files.ts';
import { Lab, type Namespace } from '../interop/lab/netns.ts';
import { buildTailnetLab, pingFrom, startTrellisNode, type TrellisNode } from '../interop/lab/tailnet.ts';
import { startTailscaled, type Tailscaled } from '../interop/lab/tailscaled.ts';
import { missingPrerequisites } from '../interop/lab/tools.ts';
import {
  benchPreamble,
  firstLine,
  fix,
  intOption,
  machineLines,
  mdTable,
  median,
  ROOT,
  sourceFingerprint,
} from './common.ts';
import { cpuSeconds, iperfWithCpu } from './iperf.ts';

const DOC = path.join(ROOT, 'docs', 'services-benchmarks.md');

type RowKind = 'trellis' | 'tailscaled' | 'official' | 'reference';
const ROW_LABEL: Record<RowKind, string> = {
  trellis: 'Trellis a → Trellis b',
  tailscaled: 'Trellis a → tailscaled c',
  official: 'tailscaled c → Trellis b (`tailscale file cp`, for comparison)',
  reference: 'tailscaled c → tailscaled d (`tailscale file cp`, reference)',
};
/**
 * The file's size. At ~2.5 Gbit/s a 200 MB file took 0.6 s, of which the set-up (daemon request, resume query,
 * two connections, slow start: ~10 ms for a 1-byte file) was a few per cent that iperf3's 6 s stream spreads over
 * ten times the bytes; 1 GB takes about as long as the iperf3 stream.
 */
const DEFAULT_FILE_MB = 1000;
const TAILDROP_TARGET = 0.9;
const TS_ENV = { TS_DEBUG_USE_DERP_HTTP: '1' };

/** Queries/s a client in ns gets from server for name: up to 64 outstanding UDP queries for `seconds`. */
const QPS_JS = `
const dgram=require('dgram');const [server,name,secs]=process.argv.slice(1);
const s=dgram.createSocket(server.includes(':')?'udp6':'udp4');
const labels=name.split('.');const q=(id)=>{const parts=[Buffer.from([id>>8,id&255,1,0,0,1,0,0,0,0,0,0])];
for(const l of labels){parts.push(Buffer.from([l.length]),Buffer.from(l))}parts.push(Buffer.from([0,0,1,0,1]));return Buffer.concat(parts)};
let answered=0,id=0,inflight=0;const end=Date.now()+secs*1000;
const send=()=>{while(inflight<64&&Date.now()<end){inflight++;s.send(q((id++)&65535),53,server)}};
s.on('message',()=>{answered++;inflight--;send()});
setInterval(()=>{inflight=Math.min(inflight,32);send()},200).unref();
send();setTimeout(()=>{console.log(JSON.stringify({qps:answered/secs}));process.exit(0)},secs*1000+200);
`;

async function qps(ns: Namespace, server: string, name: string, seconds: number): Promise<number> {
  const out = await ns.exec([process.execPath, '-e', QPS_JS, server, name, String(seconds)], {
    timeoutMs: (seconds + 15) * 1000,
  });
  return (JSON.parse(out.trim()) as { qps: number }).qps;
}

async function sendTimed(node: TrellisNode, file: string, target: string): Promise<number> {
  const client = await connectDaemon(node.socket, 5_000);
  try {
    const t0 = performance.now();
    // The file goes to the daemon as a descriptor (fdpass/) unless TRELLIS_BENCH_STREAM=1 asks for the byte stream.
    const socketPath = process.env.TRELLIS_BENCH_STREAM === '1' ? undefined : node.socket;
    await sendLocalFile(client, { target, path: file, ...(socketPath ? { socketPath } : {}) });
    return (performance.now() - t0) / 1000;
  } finally {
    client.close();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      runs: { type: 'string' },
      mb: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const seconds = intOption('seconds', values.seconds, 6);
  const runs = intOption('runs', values.runs, 2, 20);
  const FILE_MB = intOption('mb', values.mb, DEFAULT_FILE_MB, 4000);
  const out = values.out ? path.resolve(values.out) : DOC;
  const missing = missingPrerequisites(['headscale', 'tailscaled', 'tailscale', 'ip', 'iperf3', 'ping', 'ss']);
  if (!(await benchPreamble('bench (services)', missing, () => {}))) return 1;
  const started = performance.now();
  const fingerprint = sourceFingerprint();
  const machine = await machineLines(fingerprint, [await firstLine('iperf3', ['--version'])]);
  console.log(`bench (services): ${runs} run(s); Taildrop ${FILE_MB} MB; iperf3 ${seconds} s\n${machine.join('\n')}`);
  const work = await mkdtemp(path.join(tmpdir(), 'trellis-bench-svc-'));
  const lab = new Lab();
  /** Per run: Mbit/s, and the sending and receiving daemons' CPU ms per MB during iperf3 and during Taildrop. */
  type Row = { taildrop: number[]; iperf: number[]; cpu: { iperf: [number, number][]; taildrop: [number, number][] } };
  const row = (): Row => ({ taildrop: [], iperf: [], cpu: { iperf: [], taildrop: [] } });
  const rows: Record<RowKind, Row> = { trellis: row(), tailscaled: row(), official: row(), reference: row() };
  const perMb = (cpuS: number[], mb: number): [number, number] => [
    ((cpuS[0] ?? Number.NaN) * 1000) / mb,
    ((cpuS[1] ?? Number.NaN) * 1000) / mb,
  ];
  const resolver = { trellis: [] as number[], tailscaled: [] as number[] };
  try {
    const big = path.join(work, 'big.bin');
    await writeFile(big, randomBytes(FILE_MB * 1_000_000));
    const tn = await buildTailnetLab(lab, ['a', 'b', 'c', 'd']);
    const [ha, hb, hc, hd] = [tn.hosts.a, tn.hosts.b, tn.hosts.c, tn.hosts.d];
    if (!ha || !hb || !hc || !hd) throw new Error('lab without hosts');
    const login = { loginServer: tn.headscale.url, authKey: tn.authKey };
    const a = await startTrellisNode(ha, { hostname: 'trellis-a', ...login });
    const b = await startTrellisNode(hb, { hostname: 'trellis-b', ...login });
    const c: Tailscaled = await startTailscaled(hc, { name: 'c', env: TS_ENV });
    await c.up({ loginServer: login.loginServer, authKey: login.authKey, hostname: 'ts-c' });
    const d: Tailscaled = await startTailscaled(hd, { name: 'd', env: TS_ENV });
    await d.up({ loginServer: login.loginServer, authKey: login.authKey, hostname: 'ts-d' });
    const ipD = (await d.ip()).v4;
    const ipB = (await b.ip()).v4;
    const ipC = (await c.ip()).v4;
    for (const ip of [ipB, ipC])
      if (!(await pingFrom(ha, ip, { count: 3, deadlineS: 20 }))) throw new Error(`no ping ${ip}`);
    const ready = await a.waitFor((s) => (s.fileTargets ?? []).length === 3, 30_000);
    if ((ready.fileTargets ?? []).length !== 3) {
      throw new Error(`file targets of a: ${JSON.stringify(ready.fileTargets)}\n${a.output().slice(-3000)}`);
    }
    /** `tailscale file cp` from c, timed around the command. */
    const officialCp = async (ip: string): Promise<number> => {
      const t0 = performance.now();
      const cp = await c.cli(['file', 'cp', big, `${ip}:`], 300_000);
      if (cp.code !== 0) throw new Error(`tailscale file cp: ${cp.stderr}${cp.stdout}`);
      return (performance.now() - t0) / 1000;
    };
    // Trellis a sends to Trellis b and to tailscaled c; the official client's own Taildrop in the same lab is the
    // yardstick for the ratio: tailscaled c → Trellis b, and tailscaled c → tailscaled d (what the reference
    // reaches on this machine).
    const pairs = [
      {
        kind: 'trellis',
        from: ha,
        to: hb,
        ip: ipB,
        sender: a,
        receiver: b,
        send: () => sendTimed(a, big, 'trellis-b'),
      },
      { kind: 'tailscaled', from: ha, to: hc, ip: ipC, sender: a, receiver: c, send: () => sendTimed(a, big, 'ts-c') },
      { kind: 'official', from: hc, to: hb, ip: ipB, sender: c, receiver: b, send: () => officialCp(ipB) },
      { kind: 'reference', from: hc, to: hd, ip: ipD, sender: c, receiver: d, send: () => officialCp(ipD) },
    ] as const;
    for (let r = 0; r < runs; r++) {
      for (const p of pairs) {
        const watch = [p.sender.process, p.receiver.process];
        const tunnel = await iperfWithCpu({ clientNs: p.from, serverNs: p.to, addr: p.ip, seconds, watch });
        const cpu0 = watch.map(cpuSeconds);
        const secs = await p.send();
        const cpu = watch.map((proc, i) => cpuSeconds(proc) - (cpu0[i] ?? 0));
        const row = rows[p.kind];
        row.cpu.iperf.push(perMb(tunnel.cpuS, tunnel.mbit / 8));
        row.cpu.taildrop.push(perMb(cpu, FILE_MB));
        const mbps = (FILE_MB * 8) / secs;
        row.iperf.push(tunnel.mbps);
        row.taildrop.push(mbps);
        console.log(
          `[run ${r + 1}/${runs}] ${ROW_LABEL[p.kind]}: iperf3 ${fix(tunnel.mbps)} Mbit/s, Taildrop ${FILE_MB} MB in ${fix(secs, 2)} s = ${fix(mbps)} Mbit/s`,
        );
        // empty the receiver's inbox for the next run
        const sink = path.join(work, `sink-${p.kind}-${r}`);
        await mkdir(sink);
        await p.receiver.cli(['file', 'get', sink], 60_000);
        await rm(sink, { recursive: true, force: true });
      }
      resolver.trellis.push(await qps(ha, '100.100.100.100', 'trellis-b.tailnet.test', seconds));
      resolver.tailscaled.push(await qps(hc, '100.100.100.100', 'trellis-b.tailnet.test', seconds));
      console.log(
        `[run ${r + 1}/${runs}] quad-100 queries/s: Trellis ${fix(resolver.trellis.at(-1) ?? 0)}, tailscaled ${fix(resolver.tailscaled.at(-1) ?? 0)}`,
      );
    }
  } finally {
    await lab.cleanup();
    await rm(work, { recursive: true, force: true });
  }
  // Each Taildrop against the iperf3 stream measured just before it: the machine's speed drifts between runs by
  // more than the margin the target leaves, and a pair of neighbours shares the drift.
  const runRatios = (k: RowKind) => rows[k].taildrop.map((td, i) => td / (rows[k].iperf[i] ?? Number.NaN));
  const ratioOf = (k: RowKind) => median(runRatios(k));
  const table = mdTable(
    [
      'Taildrop',
      'Taildrop Mbit/s (median)',
      'Runs',
      'iperf3 Mbit/s, same pair (median)',
      '× iperf3, per run',
      '× iperf3 (median)',
    ],
    (['trellis', 'tailscaled', 'official', 'reference'] as const).map((k) => [
      ROW_LABEL[k],
      `**${fix(median(rows[k].taildrop))}**`,
      rows[k].taildrop.map((x) => fix(x)).join(', '),
      fix(median(rows[k].iperf)),
      runRatios(k)
        .map((x) => fix(x, 2))
        .join(', '),
      `**${fix(ratioOf(k), 2)}×**`,
    ]),
  );
  const med = (xs: [number, number][], i: 0 | 1) => fix(median(xs.map((x) => x[i])), 1);
  const cpuTable = mdTable(
    ['Pair', 'Sender: iperf3', 'Sender: Taildrop', 'Receiver: iperf3', 'Receiver: Taildrop'],
    (['trellis', 'tailscaled', 'official', 'reference'] as const).map((k) => {
      const { iperf, taildrop } = rows[k].cpu;
      return [ROW_LABEL[k], med(iperf, 0), med(taildrop, 0), med(iperf, 1), med(taildrop, 1)];
    }),
  );
  const qTable = mdTable(
    ['quad-100 resolver', 'queries/s (median)', 'Runs', '× reference'],
    [
      [
        'Trellis (engine, in the packet path)',
        `**${fix(median(resolver.trellis))}**`,
        resolver.trellis.map((x) => fix(x)).join(', '),
        `${fix(median(resolver.trellis) / median(resolver.tailscaled), 2)}×`,
      ],
      [
        'tailscaled (reference)',
        `**${fix(median(resolver.tailscaled))}**`,
        resolver.tailscaled.map((x) => fix(x)).join(', '),
        '1.00×',
      ],
    ],
  );
  const verdicts = (['trellis', 'tailscaled'] as const).map((k) => {
    const ratio = ratioOf(k);
    return `- Taildrop to ${k === 'trellis' ? 'Trellis' : 'tailscaled'}: ${fix(ratio, 2)}× the tunnel's iperf3 figure; target ≥ ${TAILDROP_TARGET}×: ${ratio >= TAILDROP_TARGET ? 'met' : '**not met**'}`;
  });
  verdicts.push(
    `- For comparison, tailscaled's own \`tailscale file cp\` to Trellis: ${fix(ratioOf('official'), 2)}× its iperf3 figure (no target).`,
    `- For reference, tailscaled to tailscaled: ${fix(ratioOf('reference'), 2)}× its iperf3 figure (no target).`,
  );
  const md = `# Services benchmarks

Taildrop and MagicDNS in the tailnet lab (test/interop/lab): Headscale v0.29.2, Trellis daemons a and b and an
official tailscaled c and d on one bridge, direct paths. Regenerate as root with \`npm run bench\` (this part alone:
\`node --import tsx test/bench/services.ts [--seconds N] [--runs N] [--mb N]\`).

**Targets: Taildrop of a ${FILE_MB} MB file ≥ ${TAILDROP_TARGET}× the tunnel's iperf3 figure for the same pair** (the
median over runs of each Taildrop against the iperf3 stream just before it). The resolver has
no target; tailscaled's quad-100 on the same machine is the reference.

## Machine

${machine.join('\n')}

## Taildrop

Each run: one \`iperf3 -t ${String(seconds)}\` TCP stream from the sender to the receiver over the tailnet, then the
same ${FILE_MB} MB file sent with Taildrop — from Trellis a as \`trellis file cp\` sends it (the open file handed to
the daemon as a descriptor${process.env.TRELLIS_BENCH_STREAM === '1' ? " — not in this run: TRELLIS_BENCH_STREAM=1 streamed the bytes through the daemon's socket" : ''}; timed from
request to the receiver's 200), from tailscaled c by \`tailscale file cp\`
(timed around the command). The receiver's inbox is emptied between runs, so no resume or deduplication shortens a
run. The last two rows are the official client sending, to Trellis and to another tailscaled: how close a Taildrop
gets to iperf3 on this machine when tailscaled sends, and when tailscaled also receives.

${table}

${verdicts.join('\n')}

CPU of the sending and the receiving daemon (user + system, all threads; \`/proc/<pid>/stat\`) per MB moved, medians.
The daemons do the tunnel's work in both; during a Taildrop the Trellis daemon also sends or writes the file (its
threads), while tailscaled's is in tailscaled too (but \`tailscale file cp\` reads the file itself and streams it to tailscaled). What a Taildrop costs beyond the tunnel shows as the
difference between the two columns of a side.

${cpuTable}

## Resolver

Queries for a peer's FQDN (A) to 100.100.100.100 from the node's own namespace, 64 outstanding over UDP, for
${String(seconds)} s.

${qTable}

Wall time ${fix((performance.now() - started) / 1000)} s.
`;
  await writeFile(out, md);
  console.log(`\n${table}\n\n${qTable}\n\n${verdicts.join('\n')}\nwrote ${path.relative(ROOT, out)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench (services) FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
