// Starts `trellis wg up` inside a lab namespace from a generated wg-quick file, and reads its status
// through `trellis wg show --json`, exactly as a user would.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TunnelStatus } from '../../../main/engine/plainwg/tunnel.ts';
import type { Namespace } from './netns.ts';
import type { ManagedProcess } from './proc.ts';

/**
 * node flags that make a Trellis process write a V8 CPU profile into dir when it stops. One sample per 10 ms, not
 * the default 1 ms: V8 signals every isolate at that rate, busy or idle, and a daemon has several threads, so the
 * default interval cost the lab's idle daemons a third of a core and skewed the very figures being profiled.
 */
export function cpuProfileArgs(dir: string): string[] {
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=10000'];
}

export const TRELLIS_BIN = fileURLToPath(new URL('../../../main/cli/trellis.mjs', import.meta.url));

export interface TrellisWgConfig {
  name: string;
  privateKey: string;
  listenPort?: number;
  addresses: string[];
  mtu?: number;
  peers: Array<{
    publicKey: string;
    presharedKey?: string;
    allowedIPs: string[];
    endpoint?: string;
    persistentKeepalive?: number;
  }>;
}

export function renderWgQuick(c: TrellisWgConfig): string {
  const lines = ['[Interface]', `PrivateKey = ${c.privateKey}`, `Address = ${c.addresses.join(', ')}`];
  if (c.listenPort !== undefined) lines.push(`ListenPort = ${c.listenPort}`);
  if (c.mtu !== undefined) lines.push(`MTU = ${c.mtu}`);
  for (const p of c.peers) {
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.allowedIPs.join(', ')}`);
    if (p.presharedKey) lines.push(`PresharedKey = ${p.presharedKey}`);
    if (p.endpoint) lines.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface TrellisWg {
  readonly ns: Namespace;
  readonly name: string;
  readonly process: ManagedProcess;
  show(): Promise<TunnelStatus>;
  /** Number of "handshake completed" lines logged so far. */
  handshakes(): number;
  stop(): Promise<void>;
}

export async function startTrellisWg(
  ns: Namespace,
  cfg: TrellisWgConfig,
  env: Record<string, string> = {},
): Promise<TrellisWg> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-wg-'));
  const file = path.join(dir, `${cfg.name}.conf`);
  await writeFile(file, renderWgQuick(cfg), { mode: 0o600 });
  const runDir = path.join(dir, 'run');
  // TRELLIS_CPU_PROF=<dir>: the process writes a V8 CPU profile there when it stops (as the tailnet daemons do).
  const profDir = process.env.TRELLIS_CPU_PROF;
  const prof = profDir ? cpuProfileArgs(profDir) : [];
  const proc = ns.spawn(['node', ...prof, TRELLIS_BIN, 'wg', 'up', file], {
    label: `trellis ${cfg.name}@${ns.short}`,
    env: { TRELLIS_RUN_DIR: runDir, ...env },
  });
  const up = await proc.waitForOutput(new RegExp(`interface ${cfg.name} up`), 15_000);
  if (!up) {
    await proc.stop();
    throw new Error(`trellis wg up ${cfg.name} did not come up:\n${proc.output()}`);
  }
  return {
    ns,
    name: cfg.name,
    process: proc,
    async show() {
      const out = await ns.exec(['node', TRELLIS_BIN, 'wg', 'show', cfg.name, '--json'], {
        env: { TRELLIS_RUN_DIR: runDir },
      });
      return JSON.parse(out) as TunnelStatus;
    },
    handshakes() {
      return (proc.output().match(/handshake completed/g) ?? []).length;
    },
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
