// The two contracts are each declared once (protocol.ts ENGINE_COMMANDS, preload/api.ts API_CALLS): every command
// and every call declared there must have a handler behind it, and a name declared nowhere must be refused.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AppController } from '../../main/controller/app-controller.ts';
import { createEngine } from '../../main/engine/engine.ts';
import { COMMANDS, type CommandName, EngineError } from '../../main/engine/protocol.ts';
import { API_CALLS, type ApiCallName, ApiError } from '../../preload/api.ts';
import { stubDelegate } from './stub-delegate.ts';

test('every engine command declared in the schema has a handler; an undeclared one is refused', async () => {
  const engine = createEngine();
  try {
    assert.ok(COMMANDS.length >= 18, 'the schema lists the commands');
    for (const cmd of COMMANDS) {
      // Before start every command but start answers "not started"; start without a stateDir is a bad request.
      // Neither is "unknown command": that is what a command declared without a handler would get.
      const err = await engine.handle(cmd, {} as never).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof EngineError, `${cmd}: a typed error before start`);
      assert.doesNotMatch(err.message, /unknown command/, `${cmd} has a handler`);
      assert.equal(err.code, cmd === 'start' ? 'bad-request' : 'not-started', `${cmd}: ${err.message}`);
    }
    await assert.rejects(
      engine.handle('noSuchCommand' as CommandName, {} as never),
      (e: unknown) => e instanceof EngineError && e.code === 'bad-request' && /unknown command/.test(e.message),
    );
    await assert.rejects(
      engine.handle('toString' as CommandName, {} as never), // inherited names are not commands either
      (e: unknown) => e instanceof EngineError && /unknown command/.test(e.message),
    );
  } finally {
    await engine.close();
  }
});

test('every window API call declared in the schema has a handler; an undeclared one is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-contracts-'));
  const controller = await AppController.open({
    delegate: stubDelegate(),
    link: { kind: 'none', problem: 'No Trellis daemon is running.', where: 'test', close: async () => {} },
    prefsPath: join(dir, 'app.json'),
  });
  const noSuchCall = (e: unknown) => e instanceof ApiError && /no call named/i.test(e.message);
  try {
    assert.ok(API_CALLS.length >= 20, 'the schema lists the calls');
    for (const name of API_CALLS) {
      // Without an engine and with no argument, a call succeeds or fails for its own reason, never "no such call".
      const err = await controller.call(name, undefined as never).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(!noSuchCall(err), `${name} has a handler`);
    }
    await assert.rejects(controller.call('noSuchCall' as ApiCallName, undefined as never), noSuchCall);
    await assert.rejects(controller.call('constructor' as ApiCallName, undefined as never), noSuchCall);
  } finally {
    await controller.close();
    await rm(dir, { recursive: true, force: true });
  }
});
