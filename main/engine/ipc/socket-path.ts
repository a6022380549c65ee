// Where `trellis daemon` listens: the CLI, the app's controller and the Electron shell all find it here.
import { join } from 'node:path';

/** The daemon's socket when neither --socket nor TRELLIS_SOCKET says otherwise. */
export function defaultSocketPath(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return '\\\\.\\pipe\\trellisd';
  return join(platform === 'darwin' ? '/var/run/trellis' : '/run/trellis', 'trellisd.sock');
}

/** --socket beats TRELLIS_SOCKET beats the OS default. */
export function resolveSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag || env.TRELLIS_SOCKET || defaultSocketPath();
}
