// Taildrop from the caller's side of the engine protocol (the CLI, the app's controller): the caller opens the file
// it sends and writes the files it saves, as its own user, so the engine — a root daemon — never touches a path a
// client names. Received files are read out of the inbox in pieces and removed only once saved.
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { offerDescriptor } from '../fdpass/handover.ts';
import type { EngineClient } from '../ipc/rpc.ts';
import type { ByteSource, FileSendResult } from '../protocol.ts';
import { accessError, openFileSource, readAhead } from './byte-source.ts';
import { numberedName } from './names.ts';

export interface SendLocalFile {
  target: string;
  path: string;
  /** The name the receiver sees; default the file's own. */
  name?: string;
  signal?: AbortSignal;
  /** The daemon's Unix socket: the open file is handed to it (fdpass/handover.ts) so that it reads the
   *  file itself; the bytes are streamed as before when that cannot be done. */
  socketPath?: string;
}

/** Sends a file this process may read; fileProgress events come from the engine meanwhile. */
export async function sendLocalFile(client: EngineClient, o: SendLocalFile): Promise<FileSendResult> {
  const source = await openFileSource(o.path);
  try {
    const fdToken = o.socketPath !== undefined ? await offerDescriptor(o.socketPath, source.fd) : undefined;
    // No overall time limit: the engine ends a send that makes no progress for 20 s.
    return await client.request(
      'fileSend',
      { target: o.target, name: o.name ?? source.name, size: source.size, ...(fdToken ? { fdToken } : {}) },
      { timeoutMs: 0, source, signal: o.signal },
    );
  } finally {
    await source.close();
  }
}

/** Saves received files (all, or those named) into dir, as this process's user: each under its own name, or a
 *  numbered one when that is taken (never over an existing file), then removed from the inbox. The paths written. */
export async function saveReceivedFiles(
  client: EngineClient,
  dir: string,
  names?: readonly string[],
): Promise<string[]> {
  const files = (await client.request('fileList', {})).filter((f) => !names || names.includes(f.name));
  if (files.length === 0) return [];
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw accessError(dir, e, 'create');
  }
  const saved: string[] = [];
  for (const f of files) {
    const inbox: ByteSource = {
      size: f.size,
      read: (offset, length) => client.request('fileRead', { name: f.name, offset, length }),
    };
    const { fh, to } = await createUnique(dir, f.name);
    try {
      for await (const piece of readAhead(inbox, 0)) await fh.write(piece);
      await fh.sync(); // on disk before the inbox lets go of it
      await fh.close();
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(to).catch(() => {}); // a partial copy is no use; the inbox still has the file
      throw typeof (e as NodeJS.ErrnoException).errno === 'number' ? accessError(to, e, 'create') : e;
    }
    await client.request('fileDelete', { name: f.name });
    saved.push(to);
  }
  return saved;
}

/** A new file in dir named name, or "name (n)" when taken; O_EXCL, so nothing existing (nor a link) is followed. */
async function createUnique(dir: string, name: string): Promise<{ fh: FileHandle; to: string }> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  for (let n = 0; n < 1000; n++) {
    const to = path.join(dir, n === 0 ? name : numberedName(name, n));
    try {
      return { fh: await open(to, flags, 0o644), to };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw accessError(to, e, 'create');
    }
  }
  throw accessError(path.join(dir, name), Object.assign(new Error('no free name'), { code: 'EEXIST' }));
}
