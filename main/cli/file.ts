// `trellis file cp <file>... <peer>:` (Taildrop send, with a progress line on a terminal) and
// `trellis file get [--wait] <dir>` (move received files out of the daemon's inbox), like `tailscale file`. This
// process reads the files it sends and writes the ones it gets, as the user who runs it; the daemon only sees bytes.
import path from 'node:path';
import { connectDaemon } from '../engine/ipc/daemon-client.ts';
import type { EngineEvent } from '../engine/protocol.ts';
import { type FileSource, openFileSource } from '../engine/taildrop/byte-source.ts';
import { saveReceivedFiles, sendLocalFile } from '../engine/taildrop/client-files.ts';
import { noMoreArgs, resolveSocketPath, takeOption, takeSwitch, UsageError } from './paths.ts';

export const FILE_USAGE = 'trellis file cp <file>... <peer>: | trellis file get [--wait] <dir>   [--socket PATH]';
const WAIT_LIMIT_MS = 24 * 3600_000;

export async function runFile(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help') || args.length === 0) {
    process.stdout.write(`usage: ${FILE_USAGE}\n`);
    return args.length === 0 ? 2 : 0;
  }
  try {
    const socket = resolveSocketPath(takeOption(args, '--socket'));
    const [sub, ...rest] = args;
    if (sub === 'cp') return await cp(socket, rest);
    if (sub === 'get') return await get(socket, rest);
    throw new UsageError(`unknown file command ${JSON.stringify(sub)}`);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`trellis file: ${e.message}\nusage: ${FILE_USAGE}\n`);
      return 2;
    }
    process.stderr.write(`trellis file: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function cp(socket: string, args: string[]): Promise<number> {
  const name = takeOption(args, '--name');
  const last = args.at(-1);
  if (args.length < 2 || !last?.endsWith(':')) throw new UsageError('give the file(s), then the target as <peer>:');
  const target = last.slice(0, -1);
  const files = args.slice(0, -1).map((f) => path.resolve(f));
  if (name !== undefined && files.length > 1) throw new UsageError('--name takes one file');
  // Every file is opened (as this user) before anything is sent: one that cannot be read stops the whole command.
  const opened: FileSource[] = [];
  try {
    for (const f of files) opened.push(await openFileSource(f));
  } finally {
    for (const s of opened) await s.close();
  }
  const client = await connectDaemon(socket);
  const tty = process.stderr.isTTY === true;
  const off = client.on((e: EngineEvent) => {
    if (e.event !== 'fileProgress' || !tty) return;
    const pct = e.total > 0 ? Math.floor((100 * e.sent) / e.total) : 100;
    process.stderr.write(`\r${e.name}: ${mib(e.sent)} / ${mib(e.total)} (${pct} %) ${mib(e.bytesPerSecond)}/s   `);
  });
  // Ctrl-C cancels the send in the daemon too (the engine would otherwise finish it on its own)
  const cancel = new AbortController();
  const onSigint = () => {
    cancel.abort();
    process.stderr.write('\ncancelling\n');
  };
  process.on('SIGINT', onSigint);
  try {
    for (const f of files) {
      const r = await sendLocalFile(client, {
        target,
        path: f,
        ...(name ? { name } : {}),
        signal: cancel.signal,
        socketPath: socket,
      });
      if (tty) process.stderr.write('\n');
      const resumed = r.resumedFrom > 0 ? `, resumed after ${r.resumedFrom} bytes` : '';
      process.stdout.write(`sent ${r.name} to ${r.target} (${r.total} bytes${resumed})\n`);
    }
    return 0;
  } catch (e) {
    throw cancel.signal.aborted ? new Error('cancelled') : e;
  } finally {
    process.off('SIGINT', onSigint);
    off();
    client.close();
  }
}

async function get(socket: string, args: string[]): Promise<number> {
  const wait = takeSwitch(args, '--wait');
  const [dir, ...extra] = args;
  args.length = 0;
  noMoreArgs(extra);
  if (!dir) throw new UsageError('give the directory to put the files in');
  const client = await connectDaemon(socket);
  try {
    const deadline = Date.now() + WAIT_LIMIT_MS;
    for (;;) {
      const moved = await saveReceivedFiles(client, path.resolve(dir));
      for (const m of moved) process.stdout.write(`${m}\n`);
      if (moved.length > 0 || !wait) return 0;
      if (Date.now() > deadline) return 1;
      // Wait for the next fileReceived event (or poll every 5 s, in case it was missed).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 5_000);
        const off = client.on((e) => {
          if (e.event === 'fileReceived') done();
        });
        function done() {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    }
  } finally {
    client.close();
  }
}
