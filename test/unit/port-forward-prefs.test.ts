// The forwardPorts pref end to end short of the data path: the engine checks it (nothing changes on a bad entry),
// keeps it canonical and persists it across a restart; a hand-edited prefs.json with a bad entry forwards nothing;
// `trellis set/up --forward-ports` parse it as usage errors with the same sentences, and `status` shows it.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../main/cli/paths.ts';
import { forwardPortsLine, hasRouteFlags, routePrefsOf, takeRouteFlags } from '../../main/cli/route-flags.ts';
import { formatStatus } from '../../main/cli/tailnet.ts';
import { DEFAULT_PREFS, loadState } from '../../main/engine/core/prefs-store.ts';
import { createEngine } from '../../main/engine/engine.ts';
import { EngineError, type StatusSnapshot } from '../../main/engine/protocol.ts';

test('engine: forwardPorts checked, canonical, persisted; a refused call changes nothing', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-fwd-'));
  try {
    const engine = createEngine();
    const st = await engine.handle('start', { stateDir: dir });
    assert.deepEqual(st.prefs.forwardPorts, [], 'none by default');
    const set = await engine.handle('setPrefs', { forwardPorts: [' 8080 ', '2222=22', '9000=9000'] });
    assert.deepEqual(set.forwardPorts, ['8080', '2222=22', '9000']);
    await assert.rejects(
      engine.handle('setPrefs', { forwardPorts: ['8080', '8080=81', 'x'], routeAll: true }),
      (e: unknown) =>
        e instanceof EngineError &&
        e.code === 'bad-request' &&
        /Tailnet port 8080 is forwarded more than once\. "x" is not a port forward/.test(e.message),
    );
    await assert.rejects(
      engine.handle('setPrefs', { forwardPorts: '8080' as unknown as string[] }),
      /forwardPorts must be a list/,
    );
    const status = await engine.handle('status', {});
    status.prefs.forwardPorts.push('1'); // a copy: the engine's own list is not changed through it
    assert.deepEqual((await engine.handle('status', {})).prefs.forwardPorts, ['8080', '2222=22', '9000']);
    await engine.close();

    const again = createEngine();
    const st2 = await again.handle('start', { stateDir: dir });
    assert.deepEqual(st2.prefs.forwardPorts, ['8080', '2222=22', '9000']);
    assert.equal(st2.prefs.routeAll, false, 'the refused call changed nothing');
    assert.deepEqual((await again.handle('setPrefs', { forwardPorts: [] })).forwardPorts, []);
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('prefs.json: a stored list with a bad entry (edited by hand) forwards nothing; a missing one is none', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-fwd-store-'));
  try {
    const file = path.join(dir, 'prefs.json');
    await writeFile(file, JSON.stringify({ prefs: { ...DEFAULT_PREFS, forwardPorts: ['80', '70000'] } }));
    assert.deepEqual((await loadState(dir)).prefs.forwardPorts, []);
    await writeFile(file, JSON.stringify({ prefs: { ...DEFAULT_PREFS, forwardPorts: ['80=8080'] } }));
    assert.deepEqual((await loadState(dir)).prefs.forwardPorts, ['80=8080']);
    const { forwardPorts: _gone, ...older } = DEFAULT_PREFS;
    await writeFile(file, JSON.stringify({ prefs: older }));
    assert.deepEqual((await loadState(dir)).prefs.forwardPorts, []);
    assert.ok((await readFile(file, 'utf8')).length > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('CLI: --forward-ports parsed for set and up, empty clears, bad entries are usage errors', () => {
  const args = ['--forward-ports=8080,2222=22', '--hostname', 'x'];
  const f = takeRouteFlags(args);
  assert.deepEqual(f, { forwardPorts: ['8080', '2222=22'] });
  assert.deepEqual(args, ['--hostname', 'x']);
  assert.equal(hasRouteFlags(f), true);
  assert.deepEqual(routePrefsOf(f, { peers: [] }), { forwardPorts: ['8080', '2222=22'] });
  assert.deepEqual(takeRouteFlags(['--forward-ports=']), { forwardPorts: [] });
  assert.deepEqual(takeRouteFlags(['--forward-ports', '443']), { forwardPorts: ['443'] });
  assert.throws(
    () => takeRouteFlags(['--forward-ports=0,22=']),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        '--forward-ports: "0" is not a port forward: give PORT or TAILNET_PORT=LOCAL_PORT, ports from 1 to 65535. ' +
          '"22=" is not a port forward: give PORT or TAILNET_PORT=LOCAL_PORT, ports from 1 to 65535.',
  );
});

test('status text: the forwards, and nothing when there are none', () => {
  const snap = {
    state: 'Running',
    prefs: { ...DEFAULT_PREFS, forwardPorts: ['8080', '2222=22'] },
    peers: [],
    health: [],
  } as unknown as StatusSnapshot;
  assert.equal(
    forwardPortsLine(snap),
    '# Port forwards (userspace networking): 8080 → 127.0.0.1:8080, 2222 → 127.0.0.1:22',
  );
  assert.match(formatStatus(snap), /# Port forwards \(userspace networking\): 8080 → 127\.0\.0\.1:8080/);
  assert.equal(forwardPortsLine({ prefs: { ...DEFAULT_PREFS } }), undefined);
  assert.doesNotMatch(formatStatus({ ...snap, prefs: { ...DEFAULT_PREFS } }), /Port forwards/);
});
