// The tailnet benchmark's view of a node: a `trellis daemon` (status over its socket, no CLI process per poll) or
// an official tailscaled with its TUN (`tailscale status --json`), behind one interface.
import { rmSync } from 'node:fs';
import { connectDaemon } from '../../main/engine/ipc/daemon-client.ts';
import type { EngineClient } from '../../main/engine/ipc/rpc.ts';
import type { Namespace } from '../interop/lab/netns.ts';
import type { ManagedProcess } from '../interop/lab/proc.ts';
import { startTrellisNode } from '../interop/lab/tailnet.ts';
import { startTailscaled } from '../interop/lab/tailscaled.ts';

export type Kind = 'trellis' | 'tailscaled';
export const KIND_LABEL: Record<Kind, string> = { trellis: 'Trellis', tailscaled: 'tailscaled' };

/** tailscaled's DERP client would dial https:// for Headscale's plain-HTTP embedded DERP without this. */
const TS_ENV = { TS_DEBUG_USE_DERP_HTTP: '1' };

export interface PeerView {
  /** The peer is in this node's netmap. */
  known: boolean;
  /** This node has a way to send to the peer: Trellis reports a path (DERP or direct); tailscaled's netmap entry
   * has the peer's home DERP region (before that it drops the first handshake: "no UDP or DERP addr"). */
  reachable: boolean;
  /** ip:port of the direct path in use, null while relayed or without a path. */
  direct: string | null;
}

export interface BenchNode {
  readonly kind: Kind;
  /** e.g. 'Trellis a'. */
  readonly label: string;
  readonly ns: Namespace;
  /** Tailnet IPv4 address. */
  readonly ip: string;
  /** UDP port of WireGuard/disco. */
  readonly port: number;
  /** The daemon, whose CPU time is measured. */
  readonly process: ManagedProcess;
  /** How this node sees the peer with tailnet IPv4 address peerIp. */
  view(peerIp: string): Promise<PeerView>;
  /** The daemon's output, for failure reports. */
  output(): string;
  stop(): Promise<void>;
}

/** Temp dirs of live daemons (and Headscale), for the signal handler: the lab helpers remove them only on exit. */
export const liveDirs = new Set<string>();

export function removeLiveDirs(): void {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

export interface Login {
  url: string;
  authKey: string;
}

/** Starts a daemon of the given kind in ns and logs it in as `<kind>-<short>`; resolves once it has an IPv4. */
export async function startNode(kind: Kind, ns: Namespace, short: string, login: Login): Promise<BenchNode> {
  const hostname = `${kind}-${short}`;
  const label = `${KIND_LABEL[kind]} ${short}`;
  if (kind === 'trellis') {
    const node = await startTrellisNode(ns, {
      hostname,
      loginServer: login.url,
      authKey: login.authKey,
      upTimeoutS: 30,
    });
    liveDirs.add(node.dir);
    let client: EngineClient | undefined;
    const stop = async () => {
      client?.close();
      await node.stop();
      liveDirs.delete(node.dir);
    };
    try {
      const ip = (await node.ip()).v4;
      if (!ip) throw new Error(`${label} has no tailnet IPv4 after login`);
      client = await connectDaemon(node.socket, 5_000);
      const rpc = client;
      return {
        kind,
        label,
        ns,
        ip,
        port: node.port,
        process: node.process,
        async view(peerIp) {
          const s = await rpc.request('status', {}, { timeoutMs: 5_000 });
          const p = s.peers.find((x) => x.addresses.includes(peerIp));
          const via = p?.path?.via ?? 'none';
          return {
            known: p !== undefined,
            reachable: via !== 'none',
            direct: via === 'direct' ? (p?.path?.endpoint ?? '?') : null,
          };
        },
        output: () => node.output(),
        stop,
      };
    } catch (e) {
      await stop();
      throw e;
    }
  }
  const ts = await startTailscaled(ns, { name: short, env: TS_ENV });
  liveDirs.add(ts.dir);
  const stop = async () => {
    await ts.stop();
    liveDirs.delete(ts.dir);
  };
  try {
    await ts.up({ loginServer: login.url, authKey: login.authKey, hostname, timeoutS: 30 });
    const ip = (await ts.ip()).v4;
    if (!ip) throw new Error(`${label} has no tailnet IPv4 after login`);
    return {
      kind,
      label,
      ns,
      ip,
      port: ts.port,
      process: ts.process,
      async view(peerIp) {
        const p = (await ts.status()).peers.find((x) => x.TailscaleIPs.includes(peerIp));
        return { known: p !== undefined, reachable: Boolean(p?.Relay || p?.CurAddr), direct: p?.CurAddr || null };
      },
      output: () => ts.output(),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A view that never throws: a failed status call counts as "peer unknown, no path". */
export async function safeView(node: BenchNode, peerIp: string): Promise<PeerView> {
  return node.view(peerIp).catch(() => ({ known: false, reachable: false, direct: null }));
}
