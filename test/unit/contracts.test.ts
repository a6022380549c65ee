// The two contracts are each declared once (protocol.ts ENGINE_COMMANDS, preload/api.ts API_CALLS): every command
// and every call declared there must have a handler behind it, and a name declared nowhere must be refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEngine } from '../../main/engine/engine.ts';
import { COMMANDS, type CommandName, EngineError } from '../../main/engine/protocol.ts';

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
