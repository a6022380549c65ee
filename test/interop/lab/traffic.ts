// Traffic generators that run inside lab namespaces: ping, a hashed TCP bulk transfer, iperf3.
import { fileURLToPath } from 'node:url';
import type { Namespace } from './netns.ts';
import { type ManagedProcess, withTimeout } from './proc.ts';

export const BLOB_SCRIPT = fileURLToPath(new URL('./blob.mjs', import.meta.url));

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function unbracket(addr: string): string {
  return addr.startsWith('[') && addr.endsWith(']') ? addr.slice(1, -1) : addr;
}

function isV6(addr: string): boolean {
  return unbracket(addr).includes(':');
}

export interface PingOptions {
  /** Replies required (default 1); probes are sent every 0.2 s until then or the deadline. */
  count?: number;
  /** Overall deadline in seconds (ping -w); default count + 1. */
  timeoutS?: number;
}

/** True when `count` echo replies arrived within the deadline. */
export async function ping(ns: Namespace, addr: string, opts: PingOptions = {}): Promise<boolean> {
  const count = Math.max(1, Math.floor(opts.count ?? 1));
  const deadline = Math.max(1, Math.ceil(opts.timeoutS ?? count + 1));
  // With -w, ping keeps probing (every 0.2 s) until `count` replies arrive or the deadline passes.
  const args = [
    'ping',
    isV6(addr) ? '-6' : '-4',
    '-n',
    '-q',
    '-c',
    String(count),
    '-W',
    '1',
    '-w',
    String(deadline),
    '-i',
    '0.2',
  ];
  const r = await ns.run([...args, unbracket(addr)], { timeoutMs: (deadline + 5) * 1000 });
  return r.code === 0;
}

/** Pings once per attempt until a reply arrives or totalTimeoutMs has passed. */
export async function waitPing(ns: Namespace, addr: string, totalTimeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + totalTimeoutMs;
  const maxAttempts = Math.ceil(totalTimeoutMs / 100) + 1;
  for (let i = 0; i < maxAttempts && Date.now() < deadline; i++) {
    const started = Date.now();
    if (await ping(ns, addr, { count: 1, timeoutS: 1 })) return true;
    const spent = Date.now() - started;
    if (spent < 100) await delay(100 - spent);
  }
  return false;
}

export interface TcpTransferOptions {
  fromNs: Namespace;
  toNs: Namespace;
  /** Address the receiver binds and the sender connects to (IPv6 with or without brackets). */
  toAddr: string;
  port: number;
  bytes: number;
  seed?: number;
  /** Hard limit for each side (default 120 s). */
  timeoutMs?: number;
}

export interface TcpTransferResult {
  sentSha256: string;
  receivedSha256: string;
  receivedBytes: number;
  sentBytes: number;
  /** Receiver's time from accept to EOF. */
  seconds: number;
}

interface BlobDone {
  event: 'done';
  sha256: string;
  bytes: number;
  seconds: number;
}

function lastJson(text: string): BlobDone | null {
  const lines = text.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const v = JSON.parse(line) as Partial<BlobDone>;
      if (v.event === 'done' && typeof v.sha256 === 'string' && typeof v.bytes === 'number') return v as BlobDone;
    } catch {}
  }
  return null;
}

async function awaitExit(p: ManagedProcess, timeoutMs: number): Promise<boolean> {
  return (await withTimeout(p.exited, timeoutMs)) !== 'timeout';
}

/** Streams `bytes` deterministic pseudo-random bytes from fromNs to toNs over TCP and hashes both sides. */
export async function tcpTransfer(o: TcpTransferOptions): Promise<TcpTransferResult> {
  const timeoutMs = o.timeoutMs ?? 120_000;
  const env = { BLOB_TIMEOUT_MS: String(timeoutMs) };
  const server = o.toNs.spawn([process.execPath, BLOB_SCRIPT, 'serve', o.toAddr, String(o.port)], {
    env,
    label: `${o.toNs.short}: blob serve ${o.toAddr} ${o.port}`,
  });
  try {
    if (!(await server.waitForOutput(/"event":"listening"/, 10_000))) {
      throw new Error(`blob server did not listen on ${o.toAddr}:${o.port}:\n${server.output()}`);
    }
    const sendArgs = [
      process.execPath,
      BLOB_SCRIPT,
      'send',
      o.toAddr,
      String(o.port),
      String(o.bytes),
      String(o.seed ?? 1),
    ];
    const sent = lastJson(await o.fromNs.exec(sendArgs, { env, timeoutMs: timeoutMs + 5_000 }));
    if (!sent) throw new Error('blob sender printed no result');
    if (!(await awaitExit(server, 10_000))) throw new Error(`blob server did not finish:\n${server.output()}`);
    const received = lastJson(server.output());
    if (server.exitCode !== 0 || !received)
      throw new Error(`blob server failed (exit ${server.exitCode}):\n${server.output()}`);
    return {
      sentSha256: sent.sha256,
      receivedSha256: received.sha256,
      receivedBytes: received.bytes,
      sentBytes: sent.bytes,
      seconds: received.seconds,
    };
  } finally {
    await server.stop();
  }
}

/** Polls `ss` until a TCP socket listens on port in ns (iperf3's stdout is block-buffered when piped). */
export async function waitListening(
  ns: Namespace,
  port: number,
  timeoutMs: number,
  proc?: ManagedProcess,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 500 && Date.now() < deadline; i++) {
    if (proc?.hasExited) return false;
    const r = await ns.run(['ss', '-Hltn', 'sport', '=', `:${port}`], { timeoutMs: 2_000 });
    if (r.code === 0 && r.stdout.trim().length > 0) return true;
    await delay(20);
  }
  return false;
}

export interface Iperf3Options {
  port?: number;
  /** Extra client arguments, e.g. ['-R'] or ['-u', '-b', '100M']. */
  clientArgs?: string[];
}

/** Runs an iperf3 TCP test from clientNs to addr (bound in serverNs) and returns received Mbit/s. */
export async function iperf3(
  clientNs: Namespace,
  serverNs: Namespace,
  addr: string,
  seconds: number,
  opts: Iperf3Options = {},
): Promise<number> {
  const port = String(opts.port ?? 5201);
  const host = unbracket(addr);
  const server = serverNs.spawn(['iperf3', '-s', '-1', '--forceflush', '-B', host, '-p', port], {
    label: `${serverNs.short}: iperf3 -s ${host}`,
  });
  try {
    if (!(await waitListening(serverNs, Number(port), 10_000, server))) {
      throw new Error(`iperf3 server did not start on ${host}:${port}:\n${server.output()}`);
    }
    const family = isV6(addr) ? '-6' : '-4';
    const args = ['iperf3', family, '-c', host, '-p', port, '-t', String(seconds), '-J', ...(opts.clientArgs ?? [])];
    const r = await clientNs.run(args, { timeoutMs: (seconds + 30) * 1000 });
    let report: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
    try {
      report = JSON.parse(r.stdout) as typeof report;
    } catch {
      throw new Error(`iperf3 client output is not JSON (exit ${r.code}): ${r.stderr}\n${r.stdout.slice(0, 2000)}`);
    }
    const bps = report.end?.sum_received?.bits_per_second;
    if (r.code !== 0 || report.error || typeof bps !== 'number') {
      throw new Error(`iperf3 failed (exit ${r.code}): ${report.error ?? r.stderr}`);
    }
    return bps / 1e6;
  } finally {
    await server.stop();
  }
}
