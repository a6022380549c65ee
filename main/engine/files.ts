// The engine's Taildrop commands (fileTargets, fileSend, fileList, fileTake): argument checks and error mapping
// around taildrop/service.ts, so engine.ts keeps to the state machine.
import type { EngineEvents } from './events.ts';
import { type CommandMap, EngineError, type FileSendResult, type FileTarget, type ReceivedFile } from './protocol.ts';
import { type Taildrop, TaildropError } from './taildrop/service.ts';

export type FileCommand = 'fileTargets' | 'fileSend' | 'fileList' | 'fileTake' | 'fileCancel';

/** Sends in progress, by file path, so fileCancel can stop them. */
const sending = new Map<string, Set<AbortController>>();

export async function handleFileCommand(
  td: Taildrop | undefined,
  running: boolean,
  events: EngineEvents,
  cmd: FileCommand,
  args: unknown,
): Promise<FileTarget[] | FileSendResult | ReceivedFile[] | string[] | { cancelled: number }> {
  if (!td) throw new EngineError('no-data-path', 'Taildrop needs a daemon with a TUN (the data path)');
  const a = (args ?? {}) as Record<string, unknown>;
  switch (cmd) {
    case 'fileList':
      return td.list();
    case 'fileTake': {
      if (typeof a.dir !== 'string' || a.dir === '') throw new EngineError('bad-request', 'fileTake needs a dir');
      const names = a.names;
      if (names !== undefined && (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))) {
        throw new EngineError('bad-request', 'names must be a list of file names');
      }
      return td.take(a.dir, names as string[] | undefined);
    }
    case 'fileCancel': {
      if (a.path !== undefined && typeof a.path !== 'string') throw new EngineError('bad-request', 'path must be text');
      let cancelled = 0;
      for (const [file, set] of sending) {
        if (a.path !== undefined && a.path !== file) continue;
        for (const ac of set) {
          ac.abort();
          cancelled++;
        }
      }
      return { cancelled };
    }
    case 'fileTargets':
      if (!running) throw new EngineError('no-data-path', 'not connected');
      return td.targets().map((t) => ({ name: t.name, online: t.online }));
    case 'fileSend': {
      if (!running) throw new EngineError('no-data-path', 'not connected');
      const { target, path, name } = a as CommandMap['fileSend']['args'];
      if (typeof target !== 'string' || typeof path !== 'string' || (name !== undefined && typeof name !== 'string')) {
        throw new EngineError('bad-request', 'fileSend needs a target and a path');
      }
      const ac = new AbortController();
      const set = sending.get(path) ?? new Set<AbortController>();
      set.add(ac);
      sending.set(path, set);
      try {
        return await td.send({
          target,
          file: path,
          name,
          signal: ac.signal,
          onProgress: (p) =>
            events.emit({
              type: 'event',
              event: 'fileProgress',
              target,
              name: p.name,
              sent: p.sent,
              total: p.total,
              bytesPerSecond: Math.round(p.bytesPerSecond),
            }),
        });
      } catch (e) {
        if (ac.signal.aborted) throw new EngineError('transfer-failed', `sending ${path} was cancelled`);
        if (e instanceof TaildropError) {
          const code =
            e.code === 'failed' ? 'transfer-failed' : e.code === 'not-permitted' ? 'permission-denied' : e.code;
          throw new EngineError(code, e.message);
        }
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'ENOENT' || err.code === 'EISDIR' || err.code === 'EACCES') {
          throw new EngineError('bad-request', `cannot read ${path}: ${err.message}`);
        }
        throw new EngineError('transfer-failed', `sending ${path} to ${target} failed: ${err.message}`);
      } finally {
        set.delete(ac);
        if (set.size === 0) sending.delete(path);
      }
    }
  }
}
