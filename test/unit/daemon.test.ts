// `trellis daemon` as a process: it listens on an owner-only (or group-only) socket, answers `trellis status --json`,
// and on SIGTERM stops the engine, removes the socket and exits 0.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { groupId } from '../../main/cli/daemon.ts';
import { tempIsolatedEnv } from '../isolated-env.ts';

const TRELLIS = fileURLToPath(new URL('../../main/cli/trellis.mjs', import.meta.url));
const run = promisify(execFile);

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Spawns `trellis <args>` and resolves once it says it is listening (fails if it exits or takes over 20 s). */
async function startListening(args: string[]) {
  const home = tempIsolatedEnv('trellis-daemon-home-');
  const daemon = spawn(process.execPath, [TRELLIS, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...home.env },
  });
  daemon.once('exit', () => home.remove());
  const out = { text: '' };
  daemon.stdout?.on('data', (d) => (out.text += d));
  daemon.stderr?.on('data', (d) => (out.text += d));
  const exit = exited(daemon);
  const end = Date.now() + 20_000;
  while (!out.text.includes('listening on')) {
    if (Date.now() >= end || daemon.exitCode !== null) daemon.kill('SIGKILL');
    assert.ok(Date.now() < end, `daemon did not start:\n${out.text}`);
    assert.equal(daemon.exitCode, null, `daemon exited:\n${out.text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { daemon, exit, output: () => out.text };
}

test('daemon: socket 0600 in a 0700 dir, status --json, clean SIGTERM', {
  skip: process.platform === 'win32',
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-daemon-'));
  const runDir = join(dir, 'run');
  const socket = join(runDir, 'd.sock');
  const { daemon, exit, output } = await startListening([
    'daemon',
    '--state-dir',
    join(dir, 'state'),
    '--socket',
    socket,
    '--tun',
    'off',
  ]).catch(async (e) => {
    await rm(dir, { recursive: true, force: true });
    throw e;
  });
  try {
    assert.match(output(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /m);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    assert.equal(statSync(runDir).mode & 0o777, 0o700);

    const { stdout } = await run(process.execPath, [TRELLIS, 'status', '--json', '--socket', socket]);
    const snap = JSON.parse(stdout) as { state: string; peers: unknown[]; crypto?: { aead: string } };
    assert.ok(['NeedsLogin', 'Stopped', 'Starting', 'Running', 'NeedsMachineAuth'].includes(snap.state));
    assert.ok(Array.isArray(snap.peers));
    // sodium-native is a dependency with a prebuild for this platform: the daemon runs libsodium unless told not to.
    assert.equal(snap.crypto?.aead, process.env.TRELLIS_AEAD === 'noble' ? 'noble' : 'libsodium');

    const second = await run(process.execPath, [
      TRELLIS,
      'daemon',
      '--state-dir',
      join(dir, 's2'),
      '--socket',
      socket,
      '--tun',
      'off',
    ]).then(
      () => 0,
      (e: { code: number; stdout: string }) => {
        assert.match(e.stdout, /already listening/);
        return e.code;
      },
    );
    assert.equal(second, 1, 'a second daemon on the same socket must refuse to start');

    daemon.kill('SIGTERM');
    assert.equal(await exit, 0, output());
    assert.equal(existsSync(socket), false, 'the socket file is removed');

    const noDaemon = await run(process.execPath, [TRELLIS, 'status', '--socket', socket]).then(
      () => '',
      (e: { stderr: string }) => e.stderr,
    );
    assert.match(noDaemon, /trellis daemon is not running \(no socket at /);
  } finally {
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('daemon --socket-group: the socket is 0660 for that group in a 0750 dir; group names resolve from /etc/group', {
  skip: process.platform === 'win32',
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-daemon-group-'));
  const groupFile = join(dir, 'group');
  writeFileSync(groupFile, 'root:x:0:\ntrellis:x:4242:alice,bob\nbroken:x:notanumber:\n');
  assert.equal(groupId('trellis', groupFile), 4242);
  assert.equal(groupId('broken', groupFile), undefined);
  assert.equal(groupId('nobody-here', groupFile), undefined);
  assert.equal(groupId('77', groupFile), 77);
  // A group other than the daemon's own needs root to chown to; our own primary group works for anyone.
  const gid = process.getuid?.() === 0 ? 65534 : (process.getgid?.() ?? 0);
  const runDir = join(dir, 'run');
  const socket = join(runDir, 'd.sock');
  const args = ['daemon', '--state-dir', join(dir, 'state'), '--socket', socket, '--tun', 'off'];
  const { daemon, exit, output } = await startListening([...args, '--socket-group', String(gid)]).catch(async (e) => {
    await rm(dir, { recursive: true, force: true });
    throw e;
  });
  try {
    assert.equal(statSync(socket).mode & 0o777, 0o660);
    assert.equal(statSync(socket).gid, gid);
    assert.equal(statSync(runDir).mode & 0o777, 0o750);
    assert.equal(statSync(runDir).gid, gid);
    daemon.kill('SIGTERM');
    assert.equal(await exit, 0, output());
    const bad = await run(process.execPath, [TRELLIS, ...args, '--socket-group', 'no-such-group-here']).then(
      () => '',
      (e: { stderr: string }) => e.stderr,
    );
    assert.match(bad, /no such group no-such-group-here/);
  } finally {
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
