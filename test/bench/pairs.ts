// Tunnel pairs for the throughput benchmark: two namespaces joined by a veth, Trellis (`wg up`) or a wireguard-go
// (the current one or Debian's) on each side, and one iperf3 TCP measurement with the CPU time both tunnel processes
// spent meanwhile.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Lab, type Namespace } from '../interop/lab/netns.ts';
import type { ManagedProcess } from '../interop/lab/proc.ts';
import { goBinary } from '../interop/lab/tools.ts';
import { ping, waitPing } from '../interop/lab/traffic.ts';
import { startTrellisWg, TRELLIS_BIN } from '../interop/lab/trellis.ts';
import { genKey, pubKey, startWireguardGo } from '../interop/lab/wggo.ts';
import { iperfWithCpu } from './iperf.ts';

/** Trellis (`trellis wg up`), the current wireguard-go (the reference) or Debian's 2022 wireguard-go (the floor). */
export type Impl = 'trellis' | 'wggo' | 'wggo-debian';
export const IMPL_LABEL: Record<Impl, string> = {
  trellis: 'Trellis',
  wggo: 'wireguard-go (current)',
  'wggo-debian': 'wireguard-go (Debian 2022)',
};
/** The current wireguard-go as test/setup/prereqs.sh installs it (pinned, in the Go bin dir). */
export const WGGO_CURRENT = 'wireguard-go-current';
/** The executable of a wireguard-go implementation: an absolute path when found (PATH, then the Go bin dirs). */
export function wggoBinary(impl: Exclude<Impl, 'trellis'>): string {
  const name = impl === 'wggo' ? WGGO_CURRENT : 'wireguard-go';
  return goBinary(name) ?? name;
}
const OUTER = { a: '192.0.2.1', b: '192.0.2.2' };
const INNER = { a: '203.0.113.1', b: '203.0.113.2' };
const IPERF_PORT = 5201;

interface Side {
  ns: Namespace;
  proc: ManagedProcess;
  ifname: string;
  stop(): Promise<void>;
}

export interface Pair {
  a: Side;
  b: Side;
  close(): Promise<void>;
  diagnostics(): string;
}

export interface Measurement {
  mbps: number;
  /** Mbit received during the test. */
  mbit: number;
  retransmits: number;
  wallS: number;
  /** CPU seconds (user + system) of the tunnel process on the data sender's and on the receiver's side. */
  cpuSenderS: number;
  cpuReceiverS: number;
  /** When iperf3 ran, µs of CLOCK_MONOTONIC (for cutting the profiles to it). */
  monoUs: [number, number];
}

const openLabs = new Set<Lab>();

/**
 * For a signal handler: removes the temp dirs holding Trellis's generated wg-quick files (startTrellisWg deletes
 * them only in stop(), which a signal never reaches). The config file is the last argument of `trellis wg up`.
 */
export function removeTrellisConfigDirs(): void {
  for (const lab of openLabs) {
    for (const p of lab.processes) {
      const file = p.child.spawnargs.at(-1) ?? '';
      const dir = path.dirname(file);
      const ours = p.child.spawnargs.includes(TRELLIS_BIN) && file.endsWith('.conf');
      if (ours && dir.startsWith(path.join(tmpdir(), 'trellis-wg-'))) rmSync(dir, { recursive: true, force: true });
    }
  }
}

async function startSide(impl: Impl, ns: Namespace, self: 'a' | 'b', key: string, peerPub: string, mtu: number) {
  const peer = self === 'a' ? 'b' : 'a';
  // Only side a (the iperf3 client, which pings first) knows the endpoint; side b learns it from the handshake.
  const peers = [
    { publicKey: peerPub, allowedIPs: [`${INNER[peer]}/32`], endpoint: self === 'a' ? `${OUTER.b}:51820` : undefined },
  ];
  const cfg = { privateKey: key, listenPort: 51820, mtu, peers };
  if (impl === 'trellis') {
    const t = await startTrellisWg(ns, { ...cfg, name: 'trwg0', addresses: [`${INNER[self]}/24`] });
    return { ns, proc: t.process, ifname: t.name, stop: () => t.stop() };
  }
  const g = await startWireguardGo(ns, { ...cfg, binary: wggoBinary(impl), address4: `${INNER[self]}/24` });
  if (!g.process) throw new Error('wireguard-go has no process after start');
  return { ns, proc: g.process, ifname: g.ifname, stop: () => g.stop() };
}

/** A fresh lab with implA on 192.0.2.1 and implB on 192.0.2.2; resolves once a ping crosses the tunnel. */
export async function openPair(implA: Impl, implB: Impl, mtu: number): Promise<Pair> {
  const lab = new Lab();
  openLabs.add(lab);
  const sides: Side[] = [];
  const close = async () => {
    for (const s of sides) await s.stop().catch(() => {});
    await lab.cleanup();
    openLabs.delete(lab);
  };
  try {
    const nsA = await lab.addNamespace('a');
    const nsB = await lab.addNamespace('b');
    await lab.linkVeth(nsA, nsB, { a: `${OUTER.a}/24`, b: `${OUTER.b}/24` });
    const [kA, kB] = [await genKey(), await genKey()];
    sides.push(await startSide(implB, nsB, 'b', kB, await pubKey(kA), mtu));
    sides.push(await startSide(implA, nsA, 'a', kA, await pubKey(kB), mtu));
    const [b, a] = sides as [Side, Side];
    for (const s of [a, b]) {
      const line = await s.ns.exec(['ip', '-o', 'link', 'show', 'dev', s.ifname], { timeoutMs: 5_000 });
      const got = / mtu (\d+)/.exec(line)?.[1];
      if (got !== String(mtu)) throw new Error(`${s.proc.label}: ${s.ifname} has MTU ${got}, configured ${mtu}`);
    }
    if (!(await waitPing(a.ns, INNER.b, 10_000))) throw new Error(`no ping reply from ${INNER.b} within 10 s`);
    return { a, b, close, diagnostics: () => lab.diagnostics() };
  } catch (err) {
    const diag = lab.diagnostics();
    await close().catch(() => {});
    const what = `${implA} ↔ ${implB} tunnel at MTU ${mtu} did not come up`;
    throw new Error(`${what}: ${(err as Error).message}\n--- process output ---\n${diag}`);
  }
}

/** One iperf3 TCP test a → b (reverse: b → a) after a 1 s warm-up ping, timing both tunnel processes' CPU. */
export async function measure(pair: Pair, seconds: number, reverse: boolean): Promise<Measurement> {
  const { a, b } = pair;
  if (!(await ping(a.ns, INNER.b, { count: 5, timeoutS: 3 }))) {
    throw new Error(`warm-up ping ${INNER.a} → ${INNER.b} failed: the tunnel stopped passing traffic`);
  }
  const r = await iperfWithCpu({
    clientNs: a.ns,
    serverNs: b.ns,
    addr: INNER.b,
    seconds,
    reverse,
    port: IPERF_PORT,
    watch: [a.proc, b.proc],
  });
  const [dA, dB] = [r.cpuS[0] ?? Number.NaN, r.cpuS[1] ?? Number.NaN];
  const [cpuSenderS, cpuReceiverS] = reverse ? [dB, dA] : [dA, dB];
  const { mbps, mbit, retransmits, wallS, monoUs } = r;
  return { mbps, mbit, retransmits, wallS, cpuSenderS, cpuReceiverS, monoUs };
}
