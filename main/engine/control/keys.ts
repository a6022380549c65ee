// The node's persistent keys in the state directory: one JSON file, mode 0600, in a 0700 directory (their text
// form: crypto/key-text.ts). Private keys never reach a log.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keyFromText, keyToText } from '../crypto/key-text.ts';
import { generatePrivateKey } from '../wg/crypto.ts';

export interface NodeKeys {
  machinePrivate: Uint8Array;
  nodePrivate: Uint8Array;
  /** The node key this one replaced, sent as OldNodeKey once. */
  oldNodePrivate?: Uint8Array;
}

interface KeysFile {
  machine: string;
  node: string;
  oldNode?: string;
}

const KEYS_FILE = 'keys.json';

/** Creates the state directory 0700 (tightening it if it exists). */
export async function ensureStateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (process.platform !== 'win32') await chmod(dir, 0o700);
}

/** Writes a file atomically with mode 0600. */
export async function writePrivateFile(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode: 0o600 });
  if (process.platform !== 'win32') await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export async function loadOrCreateKeys(stateDir: string): Promise<NodeKeys> {
  await ensureStateDir(stateDir);
  const path = join(stateDir, KEYS_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (text !== undefined) {
    const f = JSON.parse(text) as KeysFile;
    return {
      machinePrivate: keyFromText('privkey', f.machine),
      nodePrivate: keyFromText('privkey', f.node),
      oldNodePrivate: f.oldNode ? keyFromText('privkey', f.oldNode) : undefined,
    };
  }
  const keys: NodeKeys = { machinePrivate: generatePrivateKey(), nodePrivate: generatePrivateKey() };
  await saveKeys(stateDir, keys);
  return keys;
}

export async function saveKeys(stateDir: string, keys: NodeKeys): Promise<void> {
  const f: KeysFile = {
    machine: keyToText('privkey', keys.machinePrivate),
    node: keyToText('privkey', keys.nodePrivate),
    ...(keys.oldNodePrivate ? { oldNode: keyToText('privkey', keys.oldNodePrivate) } : {}),
  };
  await writePrivateFile(join(stateDir, KEYS_FILE), `${JSON.stringify(f)}\n`);
}
