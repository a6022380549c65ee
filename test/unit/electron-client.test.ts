// The window's Electron client over the preload's IPC transport: failures keep their ApiErrorCode (contextBridge
// would drop it from a thrown Error), events are filtered by name, dropped files without a path are refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, type ApiEventMessage, type AppSnapshot, type TrellisIpc } from '../../preload/api.ts';
import { createElectronClient } from '../../renderer/src/api/electron-client.ts';

function fakeIpc() {
  const calls: { name: string; arg: unknown }[] = [];
  const listeners = new Set<(m: ApiEventMessage) => void>();
  const ipc: TrellisIpc = {
    call: async (name, arg) => {
      calls.push({ name, arg });
      if (name === 'connect') return { ok: false, error: { code: 'no-engine', message: 'No daemon is running.' } };
      if (name === 'sendFiles') return { ok: true, result: ['id-1'] };
      return { ok: true, result: undefined };
    },
    onEvent: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    pathsOf: (files) => files.map((f) => (f.name === 'web-only.txt' ? '' : `/home/u/${f.name}`)),
  };
  const push = (m: ApiEventMessage): void => {
    for (const l of listeners) l(m);
  };
  return { ipc, calls, push };
}

test('a failed call rejects with ApiError and its code; results pass through', async () => {
  const { ipc, calls } = fakeIpc();
  const api = createElectronClient(ipc);
  await assert.rejects(
    api.connect(),
    (e) => e instanceof ApiError && e.code === 'no-engine' && /No daemon/.test(e.message),
  );
  assert.deepEqual(await api.sendFiles({ peer: 'laptop', paths: ['/a'] }), ['id-1']);
  assert.deepEqual(calls[1], { name: 'sendFiles', arg: { peer: 'laptop', paths: ['/a'] } });
});

test('events reach only the listeners of their name; dropped files need a path on disk', async () => {
  const { ipc, calls, push } = fakeIpc();
  const api = createElectronClient(ipc);
  const snapshots: unknown[] = [];
  const notices: string[] = [];
  api.on('snapshot', (s) => snapshots.push(s));
  api.on('notice', (n) => notices.push(n.message));
  push({ event: 'notice', payload: { level: 'info', message: 'hi' } });
  push({ event: 'snapshot', payload: { state: 'Running' } as AppSnapshot });
  assert.deepEqual(notices, ['hi']);
  assert.equal(snapshots.length, 1);

  assert.deepEqual(await api.sendDroppedFiles('laptop', [{ name: 'a.txt', size: 1 }]), ['id-1']);
  assert.deepEqual(calls.at(-1), { name: 'sendFiles', arg: { peer: 'laptop', paths: ['/home/u/a.txt'] } });
  const before = calls.length;
  await assert.rejects(
    api.sendDroppedFiles('laptop', [
      { name: 'a.txt', size: 1 },
      { name: 'web-only.txt', size: 1 },
    ]),
    (e) => e instanceof ApiError && e.code === 'bad-request' && /web-only\.txt/.test(e.message),
  );
  assert.equal(calls.length, before, 'nothing is sent when one file has no path');
});
