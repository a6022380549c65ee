// What a launch's command line asks of the app: start hidden, and files to send (a second launch forwards its
// argv to the first instance). Plain Node, so it is unit-tested without Electron.
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

export const HIDDEN_FLAG = '--hidden';

export interface LaunchRequest {
  hidden: boolean;
  /** Absolute paths of existing regular files named on the command line, in order, without repeats. */
  files: string[];
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Reads argv as Electron passes it. `skip` leading entries are not arguments: the executable, plus the app's
 * path when Electron runs an unpackaged app (`electron . file`). Switches (anything starting with '-', Chromium's
 * included) are not files; relative paths are taken from cwd, the directory the launch was made in.
 */
export function parseLaunchArgs(argv: readonly string[], skip: number, cwd: string): LaunchRequest {
  const args = argv.slice(skip);
  const files: string[] = [];
  for (const arg of args) {
    if (arg === '' || arg.startsWith('-')) continue;
    const path = isAbsolute(arg) ? arg : resolve(cwd, arg);
    if (isRegularFile(path) && !files.includes(path)) files.push(path);
  }
  return { hidden: args.includes(HIDDEN_FLAG), files };
}
