// Tunnel pairs for the throughput benchmark: two namespaces joined by a veth, a WireGuard implementation on each
// side (Trellis `wg up` or wireguard-go), and one iperf3 TCP measurement with the tunnel processes' CPU time.
import { readFileSync } from 'node:fs';
import { Lab, type Namespace } from '../interop/lab/netns.ts';
import type { ManagedProcess } from '../interop/lab/proc.ts';
import { ping, waitListening, waitPing } from '../interop/lab/traffic.ts';
import { startTrellisWg, type TrellisWg } from '../interop/lab/trellis.ts';
import { genKey, pubKey, startWireguardGo, type WireguardGo } from '../interop/lab/wggo.ts';

export type Impl = 'trellis' | 'wggo';

export const OUTER = { a: '192.0.2.1', b: '192.0.2.2' };
export const INNER = { a: '203.0.113.1', b: '203.0.113.2' };
const PORT = 51820;
const IPERF_PORT = 5201;
const CLK_TCK = 100; // USER_HZ on Linux; /proc/<pid>/stat reports times in these ticks

/** One side of a pair: its namespace, the tunnel process (for CPU time) and its interface name. */
interface Side {
  ns: Namespace;
  proc: ManagedProcess;
  ifname: string;
  stop(): Promise<void>;
}

export interface Pair {
  a: Side;
  b: Side;
  /** Stops both tunnels and removes the namespaces. */
  close(): Promise<void>;
  /** Output of every process of the pair, for error reports. */
  diagnostics(): string;
}

export interface Measurement {
  mbps: number;
  /** Mbit received during the test (iperf3 sum_received). */
  mbit: number;
  retransmits: number;
  wallS: number;
  /** CPU seconds (user + system) of the tunnel process on the data sender's and the receiver's side. */
  cpuSenderS: number;
  cpuReceiverS: number;
}

/** utime + stime of a process in seconds (fields 14 and 15 of /proc/<pid>/stat, counted after the comm). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at indexes 11 and 12
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

async function startSide(
  impl: Impl,
  ns: Namespace,
  o: { key: string; peerPub: string; self: 'a' | 'b'; mtu: number },
): Promise<Side> {
  const peer = o.self === 'a' ? 'b' : 'a';
  // Only side a (the iperf3 client, which pings first) is told the endpoint; side b learns it from the handshake.
  const endpoint = o.self === 'a' ? `${OUTER.b}:${PORT}` : undefined;
  if (impl === 'trellis') {
    const t: TrellisWg = await startTrellisWg(ns, {
      name: 'trwg0',
      privateKey: o.key,
      listenPort: PORT,
      addresses: [`${INNER[o.self]}/24`],
      mtu: o.mtu,
      peers: [{ publicKey: o.peerPub, allowedIPs: [`${INNER[peer]}/32`], endpoint }],
    });
    return { ns, proc: t.process, ifname: t.name, stop: () => t.stop() };
  }
  const g: WireguardGo = await startWireguardGo(ns, {
    privateKey: o.key,
    listenPort: PORT,
    address4: `${INNER[o.self]}/24`,
    mtu: o.mtu,
    peers: [{ publicKey: o.peerPub, allowedIPs: [`${INNER[peer]}/32`], endpoint }],
  });
  if (!g.process) throw new Error('wireguard-go has no process after start');
  return { ns, proc: g.process, ifname: g.ifname, stop: () => g.stop() };
}

/** The MTU the kernel reports for the interface, so a config that was silently ignored is caught. */
async function linkMtu(ns: Namespace, ifname: string): Promise<number> {
  const line = await ns.exec(['ip', '-o', 'link', 'show', 'dev', ifname], { timeoutMs: 5_000 });
  return Number(/ mtu (\d+)/.exec(line)?.[1] ?? Number.NaN);
}

/** Sets up a fresh lab with implementation implA on 192.0.2.1 and implB on 192.0.2.2 and waits for the tunnel. */
export async function openPair(implA: Impl, implB: Impl, mtu: number): Promise<Pair> {
  const lab = new Lab();
  const sides: Side[] = [];
  const pair = {
    close: async () => {
      for (const s of sides) await s.stop().catch(() => {});
      await lab.cleanup();
    },
    diagnostics: () => lab.diagnostics(),
  };
  try {
    const nsA = await lab.addNamespace('a');
    const nsB = await lab.addNamespace('b');
    await lab.linkVeth(nsA, nsB, { a: `${OUTER.a}/24`, b: `${OUTER.b}/24` });
    const [kA, kB] = [await genKey(), await genKey()];
    const [pA, pB] = [await pubKey(kA), await pubKey(kB)];
    sides.push(await startSide(implB, nsB, { key: kB, peerPub: pA, self: 'b', mtu }));
    sides.push(await startSide(implA, nsA, { key: kA, peerPub: pB, self: 'a', mtu }));
    const [b, a] = sides as [Side, Side];
    for (const s of [a, b]) {
      const got = await linkMtu(s.ns, s.ifname);
      if (got !== mtu) throw new Error(`${s.proc.label}: interface ${s.ifname} has MTU ${got}, configured ${mtu}`);
    }
    if (!(await waitPing(a.ns, INNER.b, 10_000))) {
      throw new Error(`no ping reply from ${INNER.b} through the tunnel within 10 s (handshake failed?)`);
    }
    return { a, b, ...pair };
  } catch (err) {
    const msg = `${implA} ↔ ${implB} tunnel at MTU ${mtu} did not come up: ${(err as Error).message}`;
    const diag = lab.diagnostics();
    await pair.close().catch(() => {});
    throw new Error(`${msg}\n--- process output ---\n${diag}`);
  }
}

interface IperfReport {
  error?: string;
  end?: { sum_received?: { bytes?: number; bits_per_second?: number }; sum_sent?: { retransmits?: number } };
}

/**
 * One iperf3 TCP test from side a to side b (reverse: b sends, a receives) after a 1 s warm-up ping, sampling the
 * CPU time of both tunnel processes around the client run.
 */
export async function measure(pair: Pair, seconds: number, reverse: boolean): Promise<Measurement> {
  const { a, b } = pair;
  if (!(await ping(a.ns, INNER.b, { count: 5, timeoutS: 3 }))) {
    throw new Error(`warm-up ping ${INNER.a} → ${INNER.b} failed: the tunnel stopped passing traffic`);
  }
  const port = String(IPERF_PORT);
  const server = b.ns.spawn(['iperf3', '-s', '-1', '-B', INNER.b, '-p', port], { label: 'iperf3 -s' });
  try {
    if (!(await waitListening(b.ns, IPERF_PORT, 10_000, server))) {
      throw new Error(`iperf3 server did not start:\n${server.output()}`);
    }
    const args = ['iperf3', '-4', '-c', INNER.b, '-p', port, '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])];
    const [pidA, pidB] = [a.proc.pid ?? 0, b.proc.pid ?? 0];
    const cpu0 = [cpuSeconds(pidA), cpuSeconds(pidB)];
    const t0 = performance.now();
    const r = await a.ns.run(args, { timeoutMs: (seconds + 30) * 1000 });
    const wallS = (performance.now() - t0) / 1000;
    const cpuA = cpuSeconds(pidA) - (cpu0[0] ?? 0);
    const cpuB = cpuSeconds(pidB) - (cpu0[1] ?? 0);
    let rep: IperfReport;
    try {
      rep = JSON.parse(r.stdout) as IperfReport;
    } catch {
      throw new Error(`iperf3 output is not JSON (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr}`);
    }
    const recv = rep.end?.sum_received;
    if (r.code !== 0 || rep.error || typeof recv?.bits_per_second !== 'number' || typeof recv.bytes !== 'number') {
      throw new Error(`iperf3 failed (exit ${r.code}): ${rep.error ?? r.stderr}`);
    }
    return {
      mbps: recv.bits_per_second / 1e6,
      mbit: (recv.bytes * 8) / 1e6,
      retransmits: rep.end?.sum_sent?.retransmits ?? 0,
      wallS,
      cpuSenderS: reverse ? cpuB : cpuA,
      cpuReceiverS: reverse ? cpuA : cpuB,
    };
  } finally {
    await server.stop();
  }
}
