// spawnSiblingWorker from compiled JavaScript (the app's bundle): a worker file beside the caller starts; a missing
// one throws at once, so the Taildrop threads fall back to the engine's thread instead of dying in a loop.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { spawnSiblingWorker } from '../../main/engine/ipc/thread.ts';

test('a bundled sibling worker starts; a missing one throws before any thread exists', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-sibling-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'package.json'), '{"type":"module"}\n');
  await writeFile(
    path.join(dir, 'echo-worker.js'),
    "import { parentPort, workerData } from 'node:worker_threads';\nparentPort.postMessage(workerData * 2);\n",
  );
  const here = pathToFileURL(path.join(dir, 'worker.js')).href;
  const w = spawnSiblingWorker(here, 'echo-worker', 21);
  const got = await new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  assert.equal(got, 42);
  await w.terminate();
  // resource limits reach the thread (the engine's keeps its young generation small)
  await writeFile(
    path.join(dir, 'limits-worker.js'),
    "import { parentPort, resourceLimits } from 'node:worker_threads';\nparentPort.postMessage(resourceLimits);\n",
  );
  const limited = spawnSiblingWorker(here, 'limits-worker', undefined, { maxYoungGenerationSizeMb: 6 });
  const limits = await new Promise<{ maxYoungGenerationSizeMb?: number }>((resolve, reject) => {
    limited.once('message', resolve);
    limited.once('error', reject);
  });
  assert.equal(limits.maxYoungGenerationSizeMb, 6);
  await limited.terminate();
  assert.throws(
    () => spawnSiblingWorker(here, 'receive-worker', undefined),
    (e: Error) => e.message === `${path.join(dir, 'receive-worker.js')} is missing`,
  );
});
