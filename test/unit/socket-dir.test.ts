// The socket directory of `trellis daemon` (issue 12, finding 4): the daemon sets owner and mode only of a
// directory it creates; an existing one is left exactly as it was, and with --socket-group one that is shared,
// someone else's or closed to the group is refused with the reason.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { prepareSocketDir, SocketDirError } from '../../main/cli/socket-dir.ts';

const GID = 4242;
const OTHER = 65534;

function base(t: { after: (fn: () => void) => void }): string {
  const b = mkdtempSync(join(tmpdir(), 'trellis-sockdir-'));
  t.after(() => rmSync(b, { recursive: true, force: true }));
  return b;
}

/** An existing directory with this mode and owner. */
function existing(path: string, mode: number, uid = 0, gid = 0): string {
  mkdirSync(path);
  chownSync(path, uid, gid);
  chmodSync(path, mode);
  return path;
}

const look = (p: string) => {
  const st = statSync(p);
  return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
};

function refused(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof SocketDirError && why.test(e.message));
}

describe('socket directory', { skip: process.platform === 'win32' }, () => {
  test('runs as root here (it chowns to other users and groups)', () => {
    assert.equal(process.getuid?.(), 0, 'run the unit tests as root');
  });

  test('a directory the daemon creates: 0750 root:group with --socket-group, 0700 without; parents 0755', (t) => {
    const b = base(t);
    assert.deepEqual(prepareSocketDir(join(b, 'run'), GID), { created: true });
    assert.deepEqual(look(join(b, 'run')), { mode: 0o750, uid: 0, gid: GID });
    assert.deepEqual(prepareSocketDir(join(b, 'own'), undefined), { created: true });
    assert.deepEqual(look(join(b, 'own')), { mode: 0o700, uid: 0, gid: 0 });
    assert.equal(prepareSocketDir(join(b, 'a', 'b', 'run'), GID).created, true);
    assert.equal(look(join(b, 'a', 'b')).mode, 0o755);
    assert.deepEqual(look(join(b, 'a', 'b', 'run')), { mode: 0o750, uid: 0, gid: GID });
  });

  test('a shared /tmp-like directory (1777) is refused with --socket-group and left as it was', (t) => {
    const dir = existing(join(base(t), 'tmp'), 0o1777);
    refused(
      () => prepareSocketDir(dir, GID),
      /tmp is a shared directory \(mode 1777\): --socket-group needs a directory of its own such as \/run\/trellis$/,
    );
    assert.deepEqual(look(dir), { mode: 0o1777, uid: 0, gid: 0 }, 'sticky bit and mode untouched');
    const groupWritable = existing(join(base(t), 'gw'), 0o770, 0, GID);
    refused(() => prepareSocketDir(groupWritable, GID), /shared directory \(mode 0770\)/);
    assert.deepEqual(look(groupWritable), { mode: 0o770, uid: 0, gid: GID });
  });

  test("an existing directory of root's that the group can enter is used as it is", (t) => {
    const b = base(t);
    const runtime = existing(join(b, 'systemd'), 0o755); // systemd's RuntimeDirectory=
    assert.deepEqual(prepareSocketDir(runtime, GID), { created: false });
    assert.deepEqual(look(runtime), { mode: 0o755, uid: 0, gid: 0 });
    const earlier = existing(join(b, 'earlier'), 0o750, 0, GID); // made by an earlier run
    assert.deepEqual(prepareSocketDir(earlier, GID), { created: false });
    assert.deepEqual(look(earlier), { mode: 0o750, uid: 0, gid: GID });
  });

  test('with --socket-group: a directory closed to the group, or owned by another user, is refused', (t) => {
    const b = base(t);
    const closed = existing(join(b, 'closed'), 0o700);
    refused(() => prepareSocketDir(closed, GID), /closed\/? \(mode 0700, group 0\) is closed to group 4242/);
    assert.deepEqual(look(closed), { mode: 0o700, uid: 0, gid: 0 });
    const wrongGroup = existing(join(b, 'wrong'), 0o750, 0, GID + 1);
    refused(() => prepareSocketDir(wrongGroup, GID), /is closed to group 4242/);
    const theirs = existing(join(b, 'theirs'), 0o755, OTHER);
    refused(() => prepareSocketDir(theirs, GID), /theirs belongs to user 65534, who could replace the socket/);
    assert.deepEqual(look(theirs), { mode: 0o755, uid: OTHER, gid: 0 });
    assert.deepEqual(prepareSocketDir(theirs, GID, OTHER), { created: false }, "the daemon's own user may own it");
  });

  test('without --socket-group nothing existing is changed or refused; risky ones give a warning', (t) => {
    const b = base(t);
    const tmp = existing(join(b, 'tmp'), 0o1777);
    assert.deepEqual(prepareSocketDir(tmp, undefined), { created: false });
    assert.deepEqual(look(tmp), { mode: 0o1777, uid: 0, gid: 0 });
    const open = existing(join(b, 'open'), 0o777);
    assert.match(prepareSocketDir(open, undefined).warning ?? '', /open is writable by other users/);
    assert.equal(look(open).mode, 0o777);
    const theirs = existing(join(b, 'theirs'), 0o700, OTHER);
    assert.match(prepareSocketDir(theirs, undefined).warning ?? '', /belongs to user 65534/);
  });

  test('a directory under one that others may write in (no sticky bit) or under a user-owned one is refused', (t) => {
    const b = base(t);
    const loose = existing(join(b, 'loose'), 0o777);
    refused(() => prepareSocketDir(join(loose, 'run'), GID), /loose \(mode 0777\) lets other users move the socket/);
    const owned = existing(join(b, 'home'), 0o755, OTHER);
    refused(() => prepareSocketDir(join(owned, 'run'), GID), /home belongs to user 65534, who could move/);
    const stickyParent = existing(join(b, 'sticky'), 0o1777);
    assert.deepEqual(prepareSocketDir(join(stickyParent, 'run'), GID), { created: true }, 'sticky: only we move it');
  });

  test("a link on the way owned by another user is refused; root's links are followed", (t) => {
    const b = base(t);
    const real = existing(join(b, 'real'), 0o755);
    symlinkSync(real, join(b, 'theirs'));
    lchownSync(join(b, 'theirs'), OTHER, OTHER);
    refused(() => prepareSocketDir(join(b, 'theirs'), GID), /theirs is a link owned by user 65534/);
    symlinkSync(real, join(b, 'ours'));
    assert.deepEqual(prepareSocketDir(join(b, 'ours'), GID), { created: false });
  });

  test('a file where the directory should be is an error in any case', (t) => {
    const file = join(base(t), 'file');
    writeFileSync(file, '');
    refused(() => prepareSocketDir(file, undefined), /file is not a directory$/);
    refused(() => prepareSocketDir(file, GID), /file is not a directory$/);
  });
});
