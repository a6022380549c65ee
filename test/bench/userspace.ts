// `npm run bench`, userspace part: throughput through the SOCKS5 proxy of a client in userspace-networking mode —
// Trellis (`trellis daemon --tun userspace-networking --socks5-server 127.0.0.1:1055`, as uid 65534) against
// tailscaled (`--tun=userspace-networking --socks5-server=127.0.0.1:1055`) — downloading from and uploading to an
// HTTP server on a tailscaled peer with a TUN, by its MagicDNS name, with curl; plus, for context, iperf3 between a
// tailscaled client with a TUN and the same peer. Each daemon's CPU per MB. Writes docs/userspace-benchmarks.md
// (--out: elsewhere). When this build's daemon refuses the userspace flags, the Trellis row says "not available".
import { randomBytes } from 'node:crypto';
import { accessSync, constants, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, type Namespace } from '../interop/lab/netns.ts';
import type { ManagedProcess } from '../interop/lab/proc.ts';
import {
  buildTailnetLab,
  DaemonExitError,
  HEADSCALE_ADDR,
  startTrellisNode,
  unprivileged,
  waitUntil,
} from '../interop/lab/tailnet.ts';
import { startTailscaled, type Tailscaled, tailscaledBinary } from '../interop/lab/tailscaled.ts';
import { missingPrerequisites } from '../interop/lab/tools.ts';
import { waitListening } from '../interop/lab/traffic.ts';
import { benchPreamble, firstLine, fix, intOption, machineLines, ROOT, sourceFingerprint } from './common.ts';
import { iperfWithCpu } from './iperf.ts';
import { type ProfileTop, profileFiles, topFunctions } from './profile.ts';
import { proxyTransfer, startBulkServer } from './proxy-transfer.ts';
import { liveDirs, removeLiveDirs } from './tailnet-nodes.ts';
import {
  DIRECTION_LABEL,
  type Direction,
  NOBODY_UID,
  type Packets,
  type ProxyClient,
  type ProxySample,
  packetTable,
  proxyTable,
  renderMarkdown,
  type Sample,
  type TrellisRow,
  targetLines,
  tunTable,
} from './userspace-report.ts';

const DOC = path.join(ROOT, 'docs', 'userspace-benchmarks.md');
const PROXY_PORT = 1055;
const PROXY = `127.0.0.1:${PROXY_PORT}`;
const HTTP_PORT = 8080;
const SERVER_HOST = 'ts-s';
/** tailscaled's DERP client would dial https:// for Headscale's plain-HTTP embedded DERP without this. */
const TS_ENV = { TS_DEBUG_USE_DERP_HTTP: '1' };
/** Bound for S to list a client, and for a client's first transfer through its proxy to succeed. */
const READY_MS = 30_000;
/** Bytes moved each way, unmeasured, before the first measured run: the JIT warms up on the data path first. */
const WARM_UP_BYTES = 16_000_000;
/** Slowest rate a transfer may take before it counts as hung, Mbit/s. */
const SLOWEST_MBPS = 4;

/** What the Trellis row runs; $TMP is the node's temp dir (owned by uid 65534). Kept in step with startTrellisNode. */
const TRELLIS_COMMANDS = [
  `\`${unprivileged(NOBODY_UID).join(' ')} node main/cli/trellis.mjs daemon --state-dir $TMP/state --socket $TMP/d.sock --tun userspace-networking --port 41641 --socks5-server ${PROXY}\``,
  `\`trellis up --login-server http://${HEADSCALE_ADDR}:8080 --auth-key file:$TMP/auth.key --hostname trellis-user --timeout 30 --socket $TMP/d.sock\`, as root`,
];

interface ProxyNode {
  client: ProxyClient;
  label: string;
  ns: Namespace;
  ip: string;
  process: ManagedProcess;
}

function options(): { runs: number; mb: number; seconds: number; out: string } {
  const { values } = parseArgs({
    options: { runs: { type: 'string' }, mb: { type: 'string' }, seconds: { type: 'string' }, out: { type: 'string' } },
  });
  return {
    runs: intOption('runs', values.runs, 2, 50),
    mb: intOption('mb', values.mb, 200, 10_000),
    seconds: intOption('seconds', values.seconds, 6, 600),
    out: values.out ? path.resolve(values.out) : DOC,
  };
}

function prerequisites(): string[] {
  const tools = ['headscale', 'tailscaled', 'tailscale', 'ip', 'iperf3', 'curl', 'setpriv', 'ping', 'ss'];
  const missing = missingPrerequisites(tools);
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    missing.push('/dev/net/tun');
  }
  return missing;
}

/** TRELLIS_CPU_PROF's directory (created if absent) when uid NOBODY_UID may write it; throws otherwise. */
async function profileDir(): Promise<string | undefined> {
  const dir = process.env.TRELLIS_CPU_PROF;
  if (!dir) return undefined;
  await mkdir(dir, { recursive: true });
  const st = statSync(dir);
  const writable = (st.uid === NOBODY_UID && (st.mode & 0o300) === 0o300) || (st.mode & 0o003) === 0o003;
  if (!writable) {
    throw new Error(
      `TRELLIS_CPU_PROF=${dir} is not writable by uid ${NOBODY_UID}, which runs the Trellis daemon: chmod 1777 it or name another`,
    );
  }
  return dir;
}

/** A file of n random bytes, written a MiB at a time (n may exceed what fits in memory). */
async function writeRandomFile(file: string, n: number): Promise<void> {
  const fh = await open(file, 'w', 0o600);
  try {
    for (let left = n; left > 0; left -= 1 << 20) {
      const chunk = randomBytes(Math.min(left, 1 << 20));
      const { bytesWritten } = await fh.write(chunk);
      if (bytesWritten !== chunk.length) throw new Error(`short write to ${file} (disk full?)`);
    }
  } finally {
    await fh.close();
  }
}

type LinkCounters = { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number };

/** The interface's packet and byte counters in ns (/sys/class/net/<dev>/statistics). */
async function linkCounters(ns: Namespace, dev: string): Promise<LinkCounters> {
  const names = ['rx_packets', 'rx_bytes', 'tx_packets', 'tx_bytes'];
  const out = await ns.exec(['cat', ...names.map((n) => `/sys/class/net/${dev}/statistics/${n}`)]);
  const [rxPackets = Number.NaN, rxBytes = Number.NaN, txPackets = Number.NaN, txBytes = Number.NaN] = out
    .trim()
    .split('\n')
    .map(Number);
  return { rxPackets, rxBytes, txPackets, txBytes };
}

/** Runs measure and counts the packets S's TUN carried meanwhile: the data direction's, and the ACKs' the other way. */
async function withPackets<T>(
  ns: Namespace,
  dev: string,
  direction: Direction,
  measure: () => Promise<T>,
): Promise<{ result: T; packets: Packets }> {
  const a = await linkCounters(ns, dev);
  const result = await measure();
  const b = await linkCounters(ns, dev);
  // S's kernel transmits into the TUN what S sends (download data); what arrives from the tunnel it receives
  const sent = { packets: b.txPackets - a.txPackets, bytes: b.txBytes - a.txBytes };
  const received = { packets: b.rxPackets - a.rxPackets, bytes: b.rxBytes - a.rxBytes };
  const [data, acks] = direction === 'down' ? [sent, received] : [received, sent];
  return { result, packets: { data: data.packets, dataBytes: data.bytes, acks: acks.packets } };
}

/** Waits until S lists the client with a path, then `tailscale ping`s it from S until the path is direct. */
async function makeDirect(s: Tailscaled, node: { label: string; ip: string }): Promise<string> {
  await waitUntil(`S to list ${node.label} (${node.ip}) with a path`, READY_MS, async () => {
    const p = (await s.status()).peers.find((x) => x.TailscaleIPs.includes(node.ip));
    return p && (p.Relay || p.CurAddr) ? true : null;
  });
  const r = await s.ping(node.ip, { count: 20, timeoutS: 2 });
  if (r.via !== 'direct' || !r.endpoint) {
    throw new Error(`S ↔ ${node.label} (${node.ip}): no direct path: ${r.output.trim().slice(-600)}`);
  }
  return r.endpoint;
}

/** S's path to the client right now: its direct ip:port, or null while relayed or unknown. */
async function directPath(s: Tailscaled, ip: string): Promise<string | null> {
  const p = (await s.status()).peers.find((x) => x.TailscaleIPs.includes(ip));
  return p?.CurAddr || null;
}

/** The Trellis client, or why it cannot run: its daemon exits 2 when it does not know the userspace flags. */
async function startTrellisClient(
  ns: Namespace,
  login: { loginServer: string; authKey: string },
): Promise<ProxyNode | { unavailable: string }> {
  try {
    const node = await startTrellisNode(ns, {
      hostname: 'trellis-user',
      ...login,
      tun: 'userspace-networking',
      args: ['--socks5-server', PROXY],
      runAsUid: NOBODY_UID,
      upTimeoutS: 30,
    });
    liveDirs.add(node.dir);
    const ip = (await node.ip()).v4;
    if (!ip) throw new Error(`Trellis has no tailnet IPv4 after login\n${node.output().slice(-3_000)}`);
    if (!(await waitListening(ns, PROXY_PORT, 15_000, node.process))) {
      throw new Error(`Trellis logged in but nothing listens on ${PROXY}\n${node.output().slice(-3_000)}`);
    }
    return { client: 'trellis', label: 'Trellis (userspace)', ns, ip, process: node.process };
  } catch (e) {
    if (!(e instanceof DaemonExitError && e.exitCode === 2)) throw e;
    const said = /^trellis daemon: (.+)$/m.exec(e.output)?.[1] ?? e.output.trim().split('\n')[0] ?? '';
    return { unavailable: `this build's \`trellis daemon\` refused the userspace flags (exit 2: "${said.trim()}")` };
  }
}

async function startTailscaledClient(
  ns: Namespace,
  login: { loginServer: string; authKey: string },
  userspace: boolean,
): Promise<ProxyNode> {
  const name = userspace ? 'user' : 'tun';
  const ts = await startTailscaled(ns, {
    name,
    env: TS_ENV,
    ...(userspace ? { tun: false, socks5Server: PROXY } : {}),
  });
  liveDirs.add(ts.dir);
  await ts.up({ ...login, hostname: `ts-${name}`, timeoutS: 30 });
  const ip = (await ts.ip()).v4;
  if (!ip) throw new Error(`tailscaled ${name} has no tailnet IPv4 after login`);
  if (userspace && !(await waitListening(ns, PROXY_PORT, 15_000, ts.process))) {
    throw new Error(`tailscaled ${name} does not listen on ${PROXY}\n${ts.output().slice(-3_000)}`);
  }
  const label = userspace ? 'tailscaled (userspace)' : 'tailscaled (TUN)';
  return { client: 'tailscaled', label, ns, ip, process: ts.process };
}

async function main(): Promise<number> {
  const { runs, mb, seconds, out } = options();
  let work = '';
  // on a signal the lab's hook kills the processes and re-raises it before any exit hook could remove their dirs
  const removeDirs = () => {
    if (work) rmSync(work, { recursive: true, force: true });
    removeLiveDirs();
  };
  if (!(await benchPreamble('bench (userspace)', prerequisites(), removeDirs))) return 1;
  const profDir = await profileDir();
  work = await mkdtemp(path.join(tmpdir(), 'trellis-bench-us-'));
  const started = performance.now();
  const fingerprint = sourceFingerprint();
  const machine = await machineLines(fingerprint, [
    `tailscaled ${await firstLine(tailscaledBinary() ?? 'tailscaled', ['--version'])}`,
    await firstLine('curl', ['--version']).then((l) => l.split(' ').slice(0, 2).join(' ')),
    await firstLine('iperf3', ['--version']),
  ]);
  console.log(
    `bench (userspace): ${runs} run(s); ${mb} MB each way through SOCKS5; iperf3 ${seconds} s\n${machine.join('\n')}`,
  );
  const bytes = mb * 1_000_000;
  const timeoutS = Math.max(60, Math.ceil((mb * 8) / SLOWEST_MBPS));
  const samples: ProxySample[] = [];
  const tun: Sample[] = [];
  let trellis: TrellisRow = { available: true };
  /** The Trellis daemon's pid and when its transfers ran, for its profile. */
  let trellisPid: number | undefined;
  const trellisWindows: Record<Direction, [number, number][]> = { down: [], up: [] };
  const lab = new Lab();
  try {
    const file = path.join(work, 'upload.bin');
    await writeRandomFile(file, bytes);
    const warmFile = path.join(work, 'warm-up.bin');
    await writeRandomFile(warmFile, WARM_UP_BYTES);
    const tn = await buildTailnetLab(lab, ['s', 'tsu', 'tru', 'tst']);
    liveDirs.add(tn.headscale.dir);
    const host = (h: string): Namespace => {
      const ns = tn.hosts[h];
      if (!ns) throw new Error(`no lab host ${h}`);
      return ns;
    };
    const login = { loginServer: tn.headscale.url, authKey: tn.authKey };
    const sNs = host('s');
    const s = await startTailscaled(sNs, { name: 's', env: TS_ENV });
    liveDirs.add(s.dir);
    const sTun = s.tunName ?? 'ts-s';
    await s.up({ ...login, hostname: SERVER_HOST, timeoutS: 30 });
    const sIp = (await s.ip()).v4;
    if (!sIp) throw new Error('tailscaled S has no tailnet IPv4 after login');
    await startBulkServer(sNs, '0.0.0.0', HTTP_PORT);
    const base = `http://${SERVER_HOST}.tailnet.test:${HTTP_PORT}`;

    const clients: ProxyNode[] = [await startTailscaledClient(host('tsu'), login, true)];
    const tr = await startTrellisClient(host('tru'), login);
    if ('unavailable' in tr) {
      trellis = { available: false, reason: tr.unavailable };
      console.log(`Trellis row not available: ${tr.unavailable}`);
    } else {
      clients.push(tr);
      trellisPid = tr.process.pid;
    }
    const tunClient = await startTailscaledClient(host('tst'), login, false);

    for (const c of [...clients, tunClient]) {
      console.log(`S ↔ ${c.label}: direct via ${await makeDirect(s, c)}`);
    }
    for (const c of clients) {
      // the client has S in its netmap and its proxy resolves S's MagicDNS name
      await waitUntil(`${c.label}: a first 1 MB download through ${PROXY}`, READY_MS, async () => {
        await proxyTransfer({ ns: c.ns, proxy: PROXY, base, direction: 'down', bytes: 1e6, timeoutS: 10, watch: [] });
        return true;
      });
      for (const direction of ['down', 'up'] as Direction[]) {
        const w = { ns: c.ns, proxy: PROXY, base, direction, bytes: WARM_UP_BYTES, file: warmFile, watch: [] };
        await proxyTransfer({ ...w, timeoutS: 60 });
      }
      console.log(`${c.label}: warmed up (${WARM_UP_BYTES / 1e6} MB each way, not measured)`);
    }

    for (let r = 0; r < runs; r++) {
      for (const c of r % 2 ? [...clients].reverse() : clients) {
        for (const direction of ['down', 'up'] as Direction[]) {
          if (!(await directPath(s, c.ip))) {
            console.log(`S → ${c.label}: not direct; making it direct again`);
            await makeDirect(s, c);
          }
          const watch = [c.process, s.process];
          const { result: t, packets } = await withPackets(sNs, sTun, direction, () =>
            proxyTransfer({ ns: c.ns, proxy: PROXY, base, direction, bytes, file, timeoutS, watch }),
          );
          const [cpuClientS = Number.NaN, cpuServerS = Number.NaN] = t.cpuS;
          if (c.client === 'trellis') trellisWindows[direction].push(t.monoUs);
          samples.push({
            client: c.client,
            direction,
            run: r,
            mbps: t.mbps,
            mb: t.bytes / 1e6,
            cpuClientS,
            cpuServerS,
            packets,
          });
          console.log(
            `[run ${r + 1}/${runs}] ${c.label}, ${DIRECTION_LABEL[direction]}: ${fix(t.mbps)} Mbit/s ` +
              `(${mb} MB in ${fix(t.seconds, 2)} s); CPU ${c.label} ${fix((1000 * cpuClientS) / mb, 1)} ms/MB, ` +
              `S ${fix((1000 * cpuServerS) / mb, 1)} ms/MB; at S's TUN ${fix(packets.data / mb)} data packets/MB ` +
              `(${fix(packets.dataBytes / packets.data)} bytes each), ${fix(packets.acks / mb)} the other way`,
          );
        }
      }
      for (const direction of ['down', 'up'] as Direction[]) {
        const { result: res, packets } = await withPackets(sNs, sTun, direction, () =>
          iperfWithCpu({
            clientNs: tunClient.ns,
            serverNs: sNs,
            addr: sIp,
            seconds,
            reverse: direction === 'down',
            watch: [tunClient.process, s.process],
          }),
        );
        const [cpuClientS = Number.NaN, cpuServerS = Number.NaN] = res.cpuS;
        tun.push({ direction, run: r, mbps: res.mbps, mb: res.mbit / 8, cpuClientS, cpuServerS, packets });
        console.log(
          `[run ${r + 1}/${runs}] ${tunClient.label} ↔ S iperf3, ${DIRECTION_LABEL[direction]}: ${fix(res.mbps)} Mbit/s`,
        );
      }
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- process output (tail) ---\n${lab.diagnostics().slice(-12_000)}`);
  } finally {
    await lab.cleanup();
    await rm(work, { recursive: true, force: true });
    removeLiveDirs();
  }

  // the daemons wrote their profiles when the lab stopped them
  const profile: ProfileTop[] =
    profDir && trellisPid !== undefined
      ? (['down', 'up'] as Direction[]).map((d) =>
          topFunctions(
            `Trellis (userspace), the client daemon, ${DIRECTION_LABEL[d]}`,
            profileFiles(profDir, trellisPid as number),
            trellisWindows[d],
          ),
        )
      : [];
  const run = {
    profile,
    runs,
    mb,
    seconds,
    wallS: (performance.now() - started) / 1000,
    machine,
    trellis,
    trellisCommands: TRELLIS_COMMANDS,
    engineChanged: sourceFingerprint() !== fingerprint,
  };
  await writeFile(out, renderMarkdown(samples, tun, run));
  console.log(
    `\n${proxyTable(samples, trellis)}\n\n${packetTable(samples, tun, trellis)}\n\n${tunTable(tun)}\n\n${targetLines(samples, trellis).join('\n')}\n` +
      `wall time ${fix(run.wallS)} s\nwrote ${path.relative(ROOT, out)}`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench (userspace) FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
