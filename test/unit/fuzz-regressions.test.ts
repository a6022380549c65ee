// Inputs the fuzzer (npm run fuzz, test/fuzz/) found or starts from, replayed in the suite without Jazzer: each
// crash it found stays fixed, and every committed seed still passes its target's contract (so a target that
// stops compiling or a seed that a parser change makes crash shows up here, not first in a long fuzz run).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const fuzzDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fuzz');
const targets = readdirSync(join(fuzzDir, 'targets'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

async function target(name: string): Promise<(data: Buffer) => void> {
  const m = (await import(join(fuzzDir, 'targets', `${name}.ts`))) as { fuzz: (data: Buffer) => void };
  return m.fuzz;
}

test('every fuzz target has seeds, and each seed passes its contract', async () => {
  assert.ok(targets.length >= 14, `only ${targets.length} targets`);
  for (const name of targets) {
    const dir = join(fuzzDir, 'corpus', name);
    const seeds = readdirSync(dir);
    assert.ok(seeds.length > 0, `${name} has no seeds`);
    const fuzz = await target(name);
    for (const s of seeds) {
      const data = readFileSync(join(dir, s));
      assert.ok(data.length <= 64 * 1024, `${name}/${s} is not small`);
      assert.doesNotThrow(() => fuzz(data), `${name}/${s}`);
    }
  }
});
