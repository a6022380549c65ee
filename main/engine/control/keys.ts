// Tailscale key text forms ("mkey:<hex>", "nodekey:<hex>", ...) and the node's persistent keys in the
// state directory: one JSON file, mode 0600, in a 0700 directory. Private keys never reach a log.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generatePrivateKey, publicKeyOf } from '../wg/crypto.ts';

export type KeyPrefix = 'mkey' | 'nodekey' | 'discokey' | 'privkey' | 'chalpub';

export class KeyTextError extends Error {
  override readonly name = 'KeyTextError';
}

export function keyToText(prefix: KeyPrefix, key: Uint8Array): string {
  return `${prefix}:${Buffer.from(key).toString('hex')}`;
}

export function keyFromText(prefix: KeyPrefix, text: unknown): Uint8Array {
  if (typeof text !== 'string' || !text.startsWith(`${prefix}:`)) {
    throw new KeyTextError(`expected a ${prefix}: key, got ${JSON.stringify(text)?.slice(0, 80)}`);
  }
  const hex = text.slice(prefix.length + 1);
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new KeyTextError(`${prefix}: key must be 64 hex digits`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

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

export function publicText(prefix: 'mkey' | 'nodekey' | 'discokey', privateKey: Uint8Array): string {
  return keyToText(prefix, publicKeyOf(privateKey));
}
