// One HTTP transfer through a SOCKS5 proxy with curl, inside a lab namespace, with the CPU time that chosen
// processes (the daemons) spent meanwhile; and the bulk HTTP server (bulk-http.mjs) it talks to.
import { fileURLToPath } from 'node:url';
import type { Namespace } from '../interop/lab/netns.ts';
import type { ManagedProcess } from '../interop/lab/proc.ts';
import { cpuSeconds } from './iperf.ts';

const BULK_SCRIPT = fileURLToPath(new URL('./bulk-http.mjs', import.meta.url));

/** Starts bulk-http.mjs on addr:port in ns; resolves once it listens (throws after 10 s). */
export async function startBulkServer(ns: Namespace, addr: string, port: number): Promise<ManagedProcess> {
  const p = ns.spawn([process.execPath, BULK_SCRIPT, addr, String(port)], { label: `${ns.short}: bulk-http` });
  if (!(await p.waitForOutput(/"event":"listening"/, 10_000))) {
    await p.stop();
    throw new Error(`bulk-http did not listen on ${addr}:${port}:\n${p.output()}`);
  }
  return p;
}

export interface ProxyTransferOptions {
  ns: Namespace;
  /** SOCKS5 proxy "host:port" in ns; curl hands it the host name (--socks5-hostname). */
  proxy: string;
  /** Base URL of the bulk server, e.g. http://ts-s.tailnet.test:8080 */
  base: string;
  /** 'down': GET /bytes/<bytes>; 'up': PUT the file (of exactly `bytes` bytes) to /sink. */
  direction: 'down' | 'up';
  bytes: number;
  file?: string;
  timeoutS: number;
  /** Processes whose CPU time is measured over the transfer, in this order in ProxyTransfer.cpuS. */
  watch: ManagedProcess[];
}

export interface ProxyTransfer {
  bytes: number;
  /** curl's time_total: from the proxy connection to the last byte (down) or the server's answer (up). */
  seconds: number;
  mbps: number;
  /** CPU seconds (user + system) of each watched process while curl ran. */
  cpuS: number[];
  /** When curl ran, µs of CLOCK_MONOTONIC (V8 CPU profiles count time on the same clock). */
  monoUs: [number, number];
}

/** The fields of curl's `-w '%{json}'` this module reads. */
interface CurlReport {
  http_code?: number;
  size_download?: number;
  size_upload?: number;
  time_total?: number;
  errormsg?: string | null;
}

/** Runs one curl transfer through the proxy; throws when curl fails or fewer bytes than asked for arrive. */
export async function proxyTransfer(o: ProxyTransferOptions): Promise<ProxyTransfer> {
  const up = o.direction === 'up';
  if (up && !o.file) throw new Error('an upload needs a file');
  const args = [
    'curl',
    '-sS',
    '--fail',
    '--max-time',
    String(o.timeoutS),
    '--socks5-hostname',
    o.proxy,
    // no "Expect: 100-continue" round trip before the body
    '-H',
    'Expect:',
    '-w',
    '\\n%{json}',
    ...(up ? ['-T', o.file as string, '-o', '-', `${o.base}/sink`] : ['-o', '/dev/null', `${o.base}/bytes/${o.bytes}`]),
  ];
  const cpu0 = o.watch.map(cpuSeconds);
  const mono0 = Number(process.hrtime.bigint() / 1000n);
  const r = await o.ns.run(args, { timeoutMs: (o.timeoutS + 15) * 1000 });
  const mono1 = Number(process.hrtime.bigint() / 1000n);
  const cpuS = o.watch.map((p, i) => cpuSeconds(p) - (cpu0[i] ?? 0));
  const lines = r.stdout.trim().split('\n');
  let rep: CurlReport = {};
  try {
    rep = JSON.parse(lines.at(-1) ?? '') as CurlReport;
  } catch {}
  const what = `curl ${up ? 'PUT' : 'GET'} ${o.bytes} bytes through ${o.proxy} in ${o.ns.short}`;
  if (r.code !== 0 || rep.http_code !== 200 || typeof rep.time_total !== 'number') {
    const why = r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}, HTTP ${rep.http_code ?? '?'}`;
    throw new Error(`${what}: ${why}: ${(rep.errormsg ?? r.stderr).trim()}`);
  }
  let moved = rep.size_download ?? 0;
  if (up) {
    // the server's count of what it read, not what curl believes it sent
    try {
      moved = (JSON.parse(lines[0] ?? '') as { bytes?: number }).bytes ?? 0;
    } catch {
      moved = 0;
    }
  }
  if (moved !== o.bytes) throw new Error(`${what}: ${moved} bytes arrived`);
  return {
    bytes: moved,
    seconds: rep.time_total,
    mbps: (moved * 8) / rep.time_total / 1e6,
    cpuS,
    monoUs: [mono0, mono1],
  };
}
