// The engine's Taildrop commands (fileTargets, fileSend, fileList, fileRead, fileDelete): argument checks and error
// mapping around taildrop/service.ts, so engine.ts keeps to the state machine. No command takes a path: a file to
// send comes as the caller's byte source, and a received file leaves the inbox as bytes the caller writes itself —
// the daemon runs as root and its socket's group must not get it to read or write anywhere for them.
import type { EngineEvents } from './events.ts';
import {
  type CommandMap,
  EngineError,
  type FileSendResult,
  type FileTarget,
  MAX_READ_BYTES,
  type ReceivedFile,
  type RequestContext,
} from './protocol.ts';
import { InboxError } from './taildrop/inbox.ts';
import { type Taildrop, TaildropError } from './taildrop/service.ts';

export type FileCommand = 'fileTargets' | 'fileSend' | 'fileList' | 'fileRead' | 'fileDelete';
type FileResult = FileTarget[] | FileSendResult | ReceivedFile[] | Uint8Array | { deleted: boolean };

export async function handleFileCommand(
  td: Taildrop | undefined,
  running: boolean,
  events: EngineEvents,
  cmd: FileCommand,
  args: unknown,
  ctx: RequestContext = {},
): Promise<FileResult> {
  if (!td) throw new EngineError('no-data-path', 'Taildrop needs a daemon with a TUN (the data path)');
  const a = (args ?? {}) as Record<string, unknown>;
  switch (cmd) {
    case 'fileList':
      return td.list();
    case 'fileRead': {
      const { name, offset, length } = a;
      if (typeof name !== 'string' || !isCount(offset) || !isCount(length) || length > MAX_READ_BYTES) {
        throw new EngineError(
          'bad-request',
          `fileRead needs a name, an offset and a length of at most ${MAX_READ_BYTES}`,
        );
      }
      return inboxCall(name, () => td.read(name, offset, length));
    }
    case 'fileDelete': {
      if (typeof a.name !== 'string') throw new EngineError('bad-request', 'fileDelete needs a name');
      const name = a.name;
      return inboxCall(name, async () => ({ deleted: await td.remove(name) }));
    }
    case 'fileTargets':
      if (!running) throw new EngineError('no-data-path', 'not connected');
      return td.targets().map((t) => ({ name: t.name, online: t.online }));
    case 'fileSend':
      if (!running) throw new EngineError('no-data-path', 'not connected');
      return send(td, events, a, ctx);
  }
}

async function send(
  td: Taildrop,
  events: EngineEvents,
  a: Record<string, unknown>,
  ctx: RequestContext,
): Promise<FileSendResult> {
  if ('path' in a) {
    throw new EngineError('bad-request', 'fileSend takes no path: the caller opens the file and offers its bytes');
  }
  const { target, name, size } = a as CommandMap['fileSend']['args'];
  const source = ctx.source;
  if (typeof target !== 'string' || typeof name !== 'string' || !isCount(size)) {
    throw new EngineError('bad-request', 'fileSend needs a target, a name and a size');
  }
  if (!source || source.size !== size) {
    throw new EngineError('bad-request', "fileSend needs the file's bytes: the caller offers them as the source");
  }
  try {
    return await td.send({
      target,
      source,
      name,
      signal: ctx.signal,
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
    if (ctx.signal?.aborted) throw new EngineError('transfer-failed', `sending ${name} was cancelled`);
    if (e instanceof EngineError) throw e;
    if (e instanceof TaildropError) {
      const code = e.code === 'failed' ? 'transfer-failed' : e.code === 'not-permitted' ? 'permission-denied' : e.code;
      throw new EngineError(code, e.message);
    }
    throw new EngineError('transfer-failed', `sending ${name} to ${target} failed: ${(e as Error).message}`);
  }
}

/** Inbox errors as the caller should read them: a name that is not there or not a file's is a bad request. */
async function inboxCall<T>(name: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof InboxError) throw new EngineError('bad-request', e.message);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'EISDIR') {
      throw new EngineError('bad-request', `no received file named ${JSON.stringify(name).slice(0, 80)}`);
    }
    throw new EngineError('internal', `the inbox could not be read: ${(e as Error).message}`);
  }
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}
