// Bundles the app's main side with esbuild (npm run build:main):
//   main/electron/main.ts -> dist/electron/main.js   (ESM, Electron's main process)
//   main/engine/worker.ts -> dist/electron/worker.js (ESM, the engine's worker thread)
//   main/engine/taildrop/send-worker.ts -> dist/electron/send-worker.js (the Taildrop send thread)
//   main/engine/taildrop/receive-worker.ts -> dist/electron/receive-worker.js (the Taildrop receive thread)
//   preload/index.ts      -> dist/preload/index.cjs  (CommonJS in one file: a sandboxed preload can only
//                                                     require('electron') and a few built-ins)
// Two source paths are relative to the module that holds them and would be wrong from dist/electron/, so the
// build rewrites them (and fails if the text it rewrites is no longer there):
//   - main/engine/tun/native.ts finds the addon at ../../../native/build/Release/trellis_tun.node; from
//     dist/electron/ that is ../../native/build/Release/trellis_tun.node.
//   - main/engine/host.ts spawns ./worker.js next to its own module. In a package, main.js is inside app.asar
//     and the worker must run from a real file (worker threads and native addons do not load out of the
//     archive), so host.ts looks in app.asar.unpacked, where electron-builder unpacks the worker (asarUnpack).
// The Taildrop threads need no rewrite: the engine's worker spawns them from its own file's directory (ipc/thread.ts),
// which is already app.asar.unpacked in a package; every worker file must therefore be an entry point here.
//
// Options (tests use them; `npm run build:main` passes none):
//   --out DIR  write DIR/electron/... and DIR/preload/... instead of <repo>/dist/... (DIR stands for the app's
//              dist/: the addon is then looked for at DIR/../native/build/Release, as in a package)
//   --cli      also bundle the `trellis` command (main/cli/bundle-entry.ts -> electron/trellis.js), which runs
//              the bundled engine as `trellis daemon` would from a package; not shipped yet (build/README.md)
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
// Electron 45 ships Node 24 (24.18.1 in its DEPS when 45 branched) and Chromium 153; the engine is tested on
// Node 24 too (test/interop/engine-node-versions.test.ts).
const ELECTRON_NODE = 'node24';
const ELECTRON_CHROME = 'chrome153';

const { values: opts } = parseArgs({ options: { out: { type: 'string' }, cli: { type: 'boolean' } } });
const out = opts.out === undefined ? `${root}dist` : resolve(opts.out);

/** The source rewrites described above: file (relative to the repo) -> [text, replacement]. */
const REWRITES = {
  'main/engine/tun/native.ts': [
    "'../../../native/build/Release/trellis_tun.node'",
    "'../../native/build/Release/trellis_tun.node'",
  ],
  'main/engine/host.ts': [
    'const here = import.meta.url;',
    "const here = import.meta.url.replace('/app.asar/', '/app.asar.unpacked/');",
  ],
};

/** Applies REWRITES; a rewrite whose text is missing (or not unique) stops the build. */
const rewritePaths = {
  name: 'trellis-bundle-paths',
  setup(b) {
    b.onLoad({ filter: /[\\/]main[\\/]engine[\\/](tun[\\/]native|host)\.ts$/ }, async (args) => {
      const file = args.path.slice(root.length).replaceAll('\\', '/');
      const rewrite = REWRITES[file];
      const source = await readFile(args.path, 'utf8');
      if (!rewrite) return { contents: source, loader: 'ts' };
      const [text, replacement] = rewrite;
      if (source.split(text).length !== 2) {
        return { errors: [{ text: `${file} no longer holds ${text} exactly once: update build/build-main.mjs` }] };
      }
      return { contents: source.replace(text, replacement), loader: 'ts' };
    });
  },
};

// Bundled CommonJS dependencies call require(); an ESM bundle has none, so it gets one made for it.
const esmRequire =
  "import { createRequire as __trellisCreateRequire } from 'node:module';\n" +
  'const require = __trellisCreateRequire(import.meta.url);';

const nodeBundle = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: ELECTRON_NODE,
  // The addon is loaded at run time from native/build/Release; ws's optional speed-ups are not installed.
  external: ['electron', '*.node', 'bufferutil', 'utf-8-validate', 'fsevents'],
  banner: { js: esmRequire },
  sourcemap: 'linked',
  logLevel: 'warning',
  plugins: [rewritePaths],
  absWorkingDir: root,
};

/** Node-side entry points: source -> file name under electron/. */
const nodeEntries = [
  ['main/electron/main.ts', 'main.js'],
  ['main/engine/worker.ts', 'worker.js'],
  // Taildrop sends and receives run in threads of their own, spawned by the engine's thread from sibling files.
  ['main/engine/taildrop/send-worker.ts', 'send-worker.js'],
  ['main/engine/taildrop/receive-worker.ts', 'receive-worker.js'],
];
if (opts.cli) nodeEntries.push(['main/cli/bundle-entry.ts', 'trellis.js']);

await Promise.all([
  ...nodeEntries.map(([entry, file]) =>
    build({ ...nodeBundle, entryPoints: [entry], outfile: `${out}/electron/${file}` }),
  ),
  build({
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: [ELECTRON_NODE, ELECTRON_CHROME],
    external: ['electron'],
    entryPoints: ['preload/index.ts'],
    outfile: `${out}/preload/index.cjs`,
    sourcemap: 'inline',
    logLevel: 'warning',
    absWorkingDir: root,
  }),
]);

// The worker runs from app.asar.unpacked, outside the archive's package.json: this one says its .js is ESM.
await mkdir(`${out}/electron`, { recursive: true });
await writeFile(`${out}/electron/package.json`, `${JSON.stringify({ type: 'module' })}\n`);
console.log(`built ${out}/electron/{${nodeEntries.map(([, f]) => f).join(',')}} and ${out}/preload/index.cjs`);
