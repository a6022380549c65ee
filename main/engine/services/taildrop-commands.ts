// The engine's Taildrop commands (fileTargets, fileSend, fileList, fileRead, fileDelete): argument checks and error
// mapping around taildrop/service.ts, so engine.ts keeps to the state machine. No command takes a path: a file to
// send comes as the caller's byte source, and a received file leaves the inbox as bytes the caller writes itself —
// the daemon runs as root and its socket's group must not get it to read or write anywhere for them.
import {
  type CommandHandlers,
  EngineError,
  type EngineEvent,
  type FileSendResult,
  MAX_READ_BYTES,
  type RequestContext,
} from '../protocol.ts';
import { InboxError } from '../taildrop/inbox.ts';
import { type Taildrop, TaildropError } from '../taildrop/service.ts';

export type FileCommand = 'fileTargets' | 'fileSend' | 'fileList' | 'fileRead' | 'fileDelete';

/** Where the Taildrop commands find Taildrop: the service (absent without a data path) and whether we are up. */
export interface FileCommandHost {
  taildrop(): Taildrop | undefined;
  running(): boolean;
  emit(e: EngineEvent): void;
}

/** The engine's handlers of the Taildrop commands. */
export function fileCommands(host: FileCommandHost): Pick<CommandHandlers, FileCommand> {
  const service = (): Taildrop => {
    const td = host.taildrop();
    if (!td) throw new EngineError('no-data-path', 'Taildrop needs a daemon with a TUN (the data path)');
    return td;
  };
  const connected = (): Taildrop => {
    const td = service();
    if (!host.running()) throw new EngineError('no-data-path', 'not connected');
    return td;
  };
  return {
    fileList: async () => service().list(),
    fileRead: async (a) => {
      const td = service();
      const { name, offset, length } = (a ?? {}) as Partial<Record<string, unknown>>;
      if (typeof name !== 'string' || !isCount(offset) || !isCount(length) || length > MAX_READ_BYTES) {
        throw new EngineError(
          'bad-request',
          `fileRead needs a name, an offset and a length of at most ${MAX_READ_BYTES}`,
        );
      }
      return inboxCall(name, () => td.read(name, offset, length));
    },
    fileDelete: async (a) => {
      const td = service();
      const name: unknown = a?.name;
      if (typeof name !== 'string') throw new EngineError('bad-request', 'fileDelete needs a name');
      return inboxCall(name, async () => ({ deleted: await td.remove(name) }));
    },
    fileTargets: async () =>
      connected()
        .targets()
        .map((t) => ({ name: t.name, online: t.online })),
    fileSend: async (a, ctx) => send(connected(), host, (a ?? {}) as Partial<Record<string, unknown>>, ctx),
  };
}

async function send(
  td: Taildrop,
  events: Pick<FileCommandHost, 'emit'>,
  a: Partial<Record<string, unknown>>,
  ctx: RequestContext,
): Promise<FileSendResult> {
  if ('path' in a) {
    throw new EngineError('bad-request', 'fileSend takes no path: the caller opens the file and offers its bytes');
  }
  const { target, name, size } = a;
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
