// `trellis daemon` as a process: it listens on an owner-only socket, answers `trellis status --json`,
// and on SIGTERM stops the engine, removes the socket and exits 0.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const TRELLIS = fileURLToPath(new URL('../../main/cli/trellis.mjs', import.meta.url));
const run = promisify(execFile);

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

test('daemon: socket 0600 in a 0700 dir, status --json, clean SIGTERM', {
  skip: process.platform === 'win32',
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-daemon-'));
  const runDir = join(dir, 'run');
  const socket = join(runDir, 'd.sock');
  const daemon = spawn(
    process.execPath,
    [TRELLIS, 'daemon', '--state-dir', join(dir, 'state'), '--socket', socket, '--tun', 'off'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  daemon.stdout?.on('data', (d) => (output += d));
  daemon.stderr?.on('data', (d) => (output += d));
  const exit = exited(daemon);
  try {
    const end = Date.now() + 20_000;
    while (!output.includes('listening on')) {
      assert.ok(Date.now() < end, `daemon did not start:\n${output}`);
      assert.equal(daemon.exitCode, null, `daemon exited:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(output, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /m);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    assert.equal(statSync(runDir).mode & 0o777, 0o700);

    const { stdout } = await run(process.execPath, [TRELLIS, 'status', '--json', '--socket', socket]);
    const snap = JSON.parse(stdout) as { state: string; peers: unknown[] };
    assert.ok(['NeedsLogin', 'Stopped', 'Starting', 'Running', 'NeedsMachineAuth'].includes(snap.state));
    assert.ok(Array.isArray(snap.peers));

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
    assert.equal(await exit, 0, output);
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
