// One iperf3 TCP test between two lab namespaces, with the CPU time that chosen processes (the tunnel daemons)
// spent meanwhile.
import { readFileSync } from 'node:fs';
import type { Namespace } from '../interop/lab/netns.ts';
import type { ManagedProcess } from '../interop/lab/proc.ts';
import { waitListening } from '../interop/lab/traffic.ts';

/** utime + stime in seconds (all threads): fields 14 and 15 of /proc/<pid>/stat, counted after the comm. */
export function cpuSeconds(proc: ManagedProcess): number {
  if (proc.hasExited) throw new Error(`${proc.label} exited (${proc.exitCode ?? proc.exitSignal}):\n${proc.output()}`);
  const stat = readFileSync(`/proc/${proc.pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

export interface IperfOptions {
  clientNs: Namespace;
  serverNs: Namespace;
  /** IPv4 address the server binds and the client connects to. */
  addr: string;
  seconds: number;
  /** -R: the server sends. */
  reverse?: boolean;
  port?: number; // default 5201
  /** Processes whose CPU time is measured over the test, in this order in IperfRun.cpuS. */
  watch: ManagedProcess[];
}

export interface IperfRun {
  mbps: number;
  /** Mbit received during the test. */
  mbit: number;
  retransmits: number;
  wallS: number;
  /** CPU seconds (user + system) of each watched process while the client ran. */
  cpuS: number[];
  /** When the client ran, µs of CLOCK_MONOTONIC (V8 CPU profiles count time on the same clock). */
  monoUs: [number, number];
}

interface IperfReport {
  error?: string;
  end?: { sum_received?: { bytes?: number; bits_per_second?: number }; sum_sent?: { retransmits?: number } };
}

/** Runs `iperf3 -s -1` in serverNs and one `iperf3 -4 -c addr -t seconds -J` in clientNs; throws on failure. */
export async function iperfWithCpu(o: IperfOptions): Promise<IperfRun> {
  const port = String(o.port ?? 5201);
  const server = o.serverNs.spawn(['iperf3', '-s', '-1', '-B', o.addr, '-p', port], { label: 'iperf3 -s' });
  try {
    if (!(await waitListening(o.serverNs, Number(port), 10_000, server))) {
      throw new Error(`iperf3 -s failed:\n${server.output()}`);
    }
    const args = [
      'iperf3',
      '-4',
      '-c',
      o.addr,
      '-p',
      port,
      '-t',
      String(o.seconds),
      '-J',
      ...(o.reverse ? ['-R'] : []),
    ];
    const cpu0 = o.watch.map(cpuSeconds);
    const t0 = performance.now();
    const mono0 = Number(process.hrtime.bigint() / 1000n);
    const r = await o.clientNs.run(args, { timeoutMs: (o.seconds + 30) * 1000 });
    const mono1 = Number(process.hrtime.bigint() / 1000n);
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = o.watch.map((p, i) => cpuSeconds(p) - (cpu0[i] ?? 0));
    let rep: IperfReport = {};
    try {
      rep = JSON.parse(r.stdout) as IperfReport;
    } catch {}
    const recv = rep.end?.sum_received;
    if (r.code !== 0 || typeof recv?.bits_per_second !== 'number' || typeof recv.bytes !== 'number') {
      throw new Error(`iperf3 failed (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${rep.error ?? r.stderr}`);
    }
    return {
      mbps: recv.bits_per_second / 1e6,
      mbit: (recv.bytes * 8) / 1e6,
      retransmits: rep.end?.sum_sent?.retransmits ?? 0,
      wallS,
      cpuS,
      monoUs: [mono0, mono1],
    };
  } finally {
    await server.stop();
  }
}
