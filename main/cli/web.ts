// `trellis web`: the desktop app's window in a browser, for headless machines and the end-to-end tests. Attaches
// an AppController to the running daemon and serves the built renderer plus the API bridge on 127.0.0.1, behind
// a random token in the printed URL.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, type Capabilities } from '../../preload/api.ts';
import { AppController } from '../controller/app-controller.ts';
import type { ControllerDelegate } from '../controller/delegate.ts';
import { openEngineLink } from '../controller/engine-link.ts';
import { startWebServer } from '../web/server.ts';
import { noMoreArgs, resolveSocketPath, takeOption, UsageError } from './paths.ts';

export const WEB_USAGE = 'trellis web [--port N] [--host ADDRESS] [--socket PATH]';
const DEFAULT_PORT = 8088;
const STATIC_DIR = fileURLToPath(new URL('../../renderer/dist/', import.meta.url));

const CAPABILITIES: Capabilities = { shell: 'web', openFiles: false, chooseFolder: false, autostart: false };

function unsupported(): never {
  throw new ApiError('unsupported', 'not available in the browser');
}

/** The browser's user may be on another machine: nothing is opened on this one's desktop. */
const webDelegate: ControllerDelegate = {
  capabilities: CAPABILITIES,
  notify: (n) => process.stdout.write(`${n.title}: ${n.body}\n`),
  openExternal: async () => unsupported(),
  openPath: async () => unsupported(),
  revealPath: () => unsupported(),
  chooseFolder: async () => unsupported(),
  copyText: () => unsupported(),
  applyAutostart: () => {},
};

/** $XDG_CONFIG_HOME/trellis/web-prefs.json, or under ~/.config when that is unset or not absolute. */
export function webPrefsPath(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  const config = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(config, 'trellis', 'web-prefs.json');
}

export async function runWeb(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`usage: ${WEB_USAGE}\n`);
    return 0;
  }
  let port: number;
  let host: string;
  let socketPath: string;
  try {
    const portText = takeOption(args, '--port') ?? String(DEFAULT_PORT);
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--port must be 0-65535, got ${portText}`);
    host = takeOption(args, '--host') ?? '127.0.0.1';
    socketPath = resolveSocketPath(takeOption(args, '--socket'));
    noMoreArgs(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`trellis web: ${e.message}\nusage: ${WEB_USAGE}\n`);
    return 2;
  }

  const linkOptions = { socketPath, stateDir: '', attachOnly: true };
  const link = await openEngineLink(linkOptions);
  if (link.kind === 'none') {
    // The page says so too, and the controller attaches as soon as a daemon answers.
    process.stderr.write(`trellis web: ${link.problem ?? `no daemon at ${socketPath}`} (waiting for one)\n`);
  }
  const controller = await AppController.open({
    delegate: webDelegate,
    link,
    prefsPath: webPrefsPath(),
    reopen: () => openEngineLink(linkOptions),
  });
  let server: Awaited<ReturnType<typeof startWebServer>>;
  try {
    server = await startWebServer({ backend: controller, host, port, staticDir: STATIC_DIR });
  } catch (e) {
    await controller.close();
    process.stderr.write(`trellis web: ${(e as Error).message}\n`);
    return 1;
  }
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') {
    process.stderr.write(
      `trellis web: warning: serving on ${host}; anyone who can reach it with the URL controls Trellis\n`,
    );
  }
  process.stdout.write(`Trellis web UI: ${server.url}\n`);

  await new Promise<void>((done) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      done();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await server.close();
  await controller.close();
  return 0;
}
