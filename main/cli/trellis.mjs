#!/usr/bin/env node
// The `trellis` command. Runs the TypeScript sources through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { runTrellis } = await import('./main.ts');
process.exitCode = await runTrellis(process.argv.slice(2));
