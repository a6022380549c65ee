// Runs `trellis daemon` on the host (control-plane tests need no TUN) with its own state dir and socket,
// and drives it with the `trellis` CLI verbs, exactly as a user would.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { StatusSnapshot } from '../../../main/engine/protocol.ts';
import { isolatedEnv } from '../../isolated-env.ts';
import { delay, ManagedProcess, type RunResult, runCommand } from './proc.ts';
import { TRELLIS_BIN } from './trellis.ts';

export interface TrellisDaemon {
  readonly stateDir: string;
  readonly socket: string;
  readonly process: ManagedProcess;
  /** Runs `trellis <args> --socket <socket>`. */
  cli(args: string[], timeoutMs?: number): Promise<RunResult>;
  status(): Promise<StatusSnapshot>;
  /** Polls status until pred holds; returns the last status either way. */
  waitFor(pred: (s: StatusSnapshot) => boolean, timeoutMs: number): Promise<StatusSnapshot>;
  stop(): Promise<void>;
  /** Stops and starts again on the same state dir and socket. */
  restart(): Promise<void>;
  /** Stops and removes the state dir. */
  dispose(): Promise<void>;
}

const running = new Set<TrellisDaemon>();
process.on('exit', () => {
  for (const d of running) d.process.child.kill('SIGKILL');
});

async function spawnDaemon(stateDir: string, socket: string): Promise<ManagedProcess> {
  // Control-plane tests run on the host: no TUN, nothing touches the host's network.
  const p = new ManagedProcess(
    'node',
    [TRELLIS_BIN, 'daemon', '--state-dir', stateDir, '--socket', socket, '--tun', 'off'],
    // Its home is in its own temp dir: nothing of the real user's is read.
    { label: `trellis daemon ${path.basename(stateDir)}`, env: isolatedEnv(path.dirname(stateDir)) },
  );
  for (let i = 0; i < 150; i++) {
    const r = await runCommand('node', [TRELLIS_BIN, 'status', '--json', '--socket', socket], { timeoutMs: 10_000 });
    if (r.code === 0) return p;
    if (p.hasExited) break;
    await delay(100);
  }
  await p.stop();
  throw new Error(`trellis daemon did not start:\n${p.output()}`);
}

export async function startDaemon(): Promise<TrellisDaemon> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellisd-'));
  const stateDir = path.join(dir, 'state');
  const socket = path.join(dir, 'run', 'trellisd.sock');
  let proc = await spawnDaemon(stateDir, socket);
  const d: TrellisDaemon = {
    stateDir,
    socket,
    get process() {
      return proc;
    },
    cli: (args, timeoutMs = 30_000) => runCommand('node', [TRELLIS_BIN, ...args, '--socket', socket], { timeoutMs }),
    async status() {
      const r = await d.cli(['status', '--json']);
      if (r.code !== 0) throw new Error(`trellis status failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout) as StatusSnapshot;
    },
    async waitFor(pred, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let s = await d.status();
      for (let i = 0; i < 1000 && !pred(s) && Date.now() < deadline; i++) {
        await delay(100);
        s = await d.status();
      }
      return s;
    },
    async stop() {
      await proc.stop();
    },
    async restart() {
      await proc.stop();
      proc = await spawnDaemon(stateDir, socket);
    },
    async dispose() {
      running.delete(d);
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  running.add(d);
  return d;
}
