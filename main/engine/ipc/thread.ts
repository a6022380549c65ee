// Starts a worker thread from a module beside the caller's: <name>.js when running compiled JavaScript (the app's
// bundle), <name>.ts under tsx (tests, the CLI from sources) through a one-line bootstrap that registers tsx
// inside the thread first — loader flags in execArgv do not reach worker threads on Node 20.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ResourceLimits, Worker } from 'node:worker_threads';

/**
 * Throws when the worker's file is missing: a Worker made from a missing file only fails later, in the thread, so a
 * caller that can do without the thread (the Taildrop threads run on the engine's thread then) would never know.
 */
export function spawnSiblingWorker(
  here: string,
  name: string,
  workerData: unknown,
  resourceLimits?: ResourceLimits,
): Worker {
  const common = { workerData, resourceLimits }; // undefined limits: V8's defaults
  if (!here.endsWith('.ts')) {
    const file = new URL(`./${name}.js`, here);
    if (file.protocol === 'file:' && !existsSync(fileURLToPath(file))) {
      throw new Error(`${fileURLToPath(file)} is missing`);
    }
    return new Worker(file, common);
  }
  const entry = new URL(`./${name}.ts`, here).href;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  const execArgv = withoutTsxLoader(process.execArgv);
  if (execArgv.length === process.execArgv.length) return new Worker(boot, { eval: true, ...common });
  try {
    return new Worker(boot, { eval: true, execArgv, ...common });
  } catch (e) {
    // An explicit execArgv may not hold process-wide flags (--title, --max-old-space-size...) that inheriting
    // tolerates: inherit then, tsx's loader flag included (a second registration is harmless).
    if ((e as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    return new Worker(boot, { eval: true, ...common });
  }
}

/** execArgv minus tsx loader flags, so tsx is never registered twice in the thread. */
function withoutTsxLoader(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = /^--(import|loader|experimental-loader)=(.*)$/.exec(a);
    if (eq && /tsx/.test(eq[2])) continue;
    if (/^--(import|loader|experimental-loader)$/.test(a) && /tsx/.test(argv[i + 1] ?? '')) {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}
