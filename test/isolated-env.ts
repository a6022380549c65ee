// The environment for any process a test starts that may read the user's files (the app, `trellis web`, a
// daemon): a home of its own, so a preference left in the real ~/.config/trellis can never change a run.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The variables Trellis reads to find the user's folders. */
export type IsolatedEnv = Record<'HOME' | 'XDG_CONFIG_HOME' | 'XDG_DOWNLOAD_DIR', string>;

/** HOME, XDG_CONFIG_HOME and XDG_DOWNLOAD_DIR under dir/home (created 0700); removing dir removes them. */
export function isolatedEnv(dir: string): IsolatedEnv {
  const home = join(dir, 'home');
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), XDG_DOWNLOAD_DIR: join(home, 'Downloads') };
  mkdirSync(env.XDG_CONFIG_HOME, { recursive: true, mode: 0o700 });
  return env;
}

/** An isolated environment in a fresh temp directory, for a caller with no directory of its own. */
export function tempIsolatedEnv(prefix = 'trellis-home-'): { env: IsolatedEnv; dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { env: isolatedEnv(dir), dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
