// The directory of the daemon's Unix socket (issue 12, finding 4). The daemon sets the owner and mode only of a
// directory it creates itself; a directory that already exists is used as it is or refused, never changed (it
// may be /tmp or /run, whose sticky bit and mode others rely on). With --socket-group the directory must be the
// daemon's own: whoever may write in it could put a socket of their own in place of ours, and the group's members
// would then talk to an impostor.
import { chmodSync, chownSync, lstatSync, mkdirSync, realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';

export class SocketDirError extends Error {
  override readonly name = 'SocketDirError';
}

export interface SocketDirResult {
  /** The daemon made the directory, and so set its owner and mode. */
  created: boolean;
  /** Something the operator should hear that does not stop the daemon (only without --socket-group). */
  warning?: string;
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');
/** Writable by group or others, whatever the sticky bit says. */
const shared = (st: Stats) => (st.mode & 0o022) !== 0;
const sticky = (st: Stats) => (st.mode & 0o1000) !== 0;

/**
 * Makes dir for the socket (0700, or 0750 for group gid) when it does not exist; otherwise checks it. With gid a
 * directory that others could write in, one owned by another user, one the group cannot enter, or one under a
 * directory others could rename it in is an error saying why; without gid such things are only a warning.
 * @param uid the daemon's own user, which may own the directory besides root
 */
export function prepareSocketDir(dir: string, gid?: number, uid = process.getuid?.() ?? 0): SocketDirResult {
  const path = resolve(dir);
  const created = makeDir(path);
  if (created) {
    if (gid !== undefined) chownSync(path, -1, gid);
    chmodSync(path, gid === undefined ? 0o700 : 0o750); // explicitly: mkdir's mode went through the umask
  }
  const problem = unsafeAncestor(path, uid) ?? (created ? undefined : unusable(path, gid, uid));
  if (problem === undefined) return { created };
  if (gid !== undefined) throw new SocketDirError(problem);
  return { created, warning: problem };
}

/** Creates dir (its missing parents 0755, root's); false when it was already there. */
function makeDir(path: string): boolean {
  for (let attempt = 0; ; attempt++) {
    try {
      mkdirSync(path, { mode: 0o700 });
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code !== 'ENOENT' || attempt > 0) throw e;
      mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    }
  }
}

/** Why an existing socket directory will not do as it is, or undefined. */
function unusable(path: string, gid: number | undefined, uid: number): string | undefined {
  const real = realpathSync(path);
  const st = statSync(real);
  const name = real === path ? path : `${path} (${real})`;
  if (!st.isDirectory()) throw new SocketDirError(`${name} is not a directory`);
  if (st.uid !== 0 && st.uid !== uid) {
    return `${name} belongs to user ${st.uid}, who could replace the socket: use a directory owned by root such as /run/trellis`;
  }
  if (gid === undefined) {
    // Only the daemon's own user may connect; a shared sticky directory at least keeps others from removing it.
    return shared(st) && !sticky(st) ? `${name} is writable by other users, who could replace the socket` : undefined;
  }
  if (shared(st)) {
    return `${name} is a shared directory (mode ${octal(st.mode)}): --socket-group needs a directory of its own such as /run/trellis`;
  }
  const groupMayEnter = (st.mode & 0o001) !== 0 || ((st.mode & 0o010) !== 0 && st.gid === gid);
  if (!groupMayEnter) {
    return (
      `${name} (mode ${octal(st.mode)}, group ${st.gid}) is closed to group ${gid}: give it that group and mode ` +
      '0750, or remove it so the daemon creates it'
    );
  }
  return undefined;
}

/**
 * Why something above dir could let another user move it or the path to it, or undefined: a directory on the way
 * that others may write in without the sticky bit, or a directory or link on the way owned by another user.
 */
function unsafeAncestor(path: string, uid: number): string | undefined {
  const trusted = (st: Stats) => st.uid === 0 || st.uid === uid;
  // The path as named: a link on it owned by another user could be pointed elsewhere later.
  const parts = path.split(sep).filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = sep + parts.slice(0, i).join(sep);
    const st = lstatSync(p);
    if (st.isSymbolicLink() && !trusted(st)) return `${p} is a link owned by user ${st.uid}, who could redirect it`;
  }
  // The directories it really goes through.
  for (let p = dirname(realpathSync(path)); ; p = dirname(p)) {
    const st = statSync(p);
    if (!trusted(st)) return `${p} belongs to user ${st.uid}, who could move the socket's directory`;
    if (shared(st) && !sticky(st)) {
      return `${p} (mode ${octal(st.mode)}) lets other users move the socket's directory`;
    }
    if (p === dirname(p)) return undefined;
  }
}
