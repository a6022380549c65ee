// The `trellis` command as esbuild bundles it (build/build-main.mjs --cli): trellis.mjs registers tsx to run the
// sources, which a bundle neither needs nor has. The bundled command spawns the bundled engine (worker.js beside it).
import { runTrellis } from './main.ts';

process.exitCode = await runTrellis(process.argv.slice(2));
