// `trellis web`: the desktop app's window in a browser, for headless machines and the end-to-end tests. Attaches
// an AppController to the running daemon and serves the built renderer plus the API bridge, behind a random token
// in the printed URL: on 127.0.0.1 over HTTP, elsewhere only over HTTPS. Received files go to one folder fixed
// here (--save-dir), never to one the browser names.
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, type Capabilities } from '../../preload/api.ts';
import { AppController } from '../controller/app-controller.ts';
import type { ControllerDelegate } from '../controller/delegate.ts';
import { openEngineLink } from '../controller/engine-link.ts';
import { startWebServer } from '../web/server.ts';
import { isLoopbackHost, loadTls, type TlsFiles, type TlsMaterial } from '../web/tls.ts';
import { noMoreArgs, resolveSocketPath, takeOption, UsageError } from './paths.ts';

export const WEB_USAGE =
  'trellis web [--port N] [--host ADDRESS --tls-cert FILE --tls-key FILE] [--save-dir DIR] [--socket PATH]';
const WEB_HELP = `usage: ${WEB_USAGE}

  --port N          port to listen on (default 8088; 0 = any free one)
  --host ADDRESS    address to listen on (default 127.0.0.1); anything but loopback needs --tls-cert and --tls-key
  --tls-cert FILE   PEM certificate to serve HTTPS with; the browser must use one of its names
  --tls-key FILE    its PEM private key
  --save-dir DIR    the folder received files are saved to (default: $XDG_DOWNLOAD_DIR or ~/Downloads);
                    the browser cannot pick another
  --socket PATH     the daemon's socket
`;
const DEFAULT_PORT = 8088;
export const STATIC_DIR = fileURLToPath(new URL('../../renderer/dist/', import.meta.url));

function unsupported(): never {
  throw new ApiError('unsupported', 'not available in the browser');
}

/** The browser's user may be on another machine: nothing is opened on this one's desktop. */
export function webDelegate(saveDir: string): ControllerDelegate {
  const capabilities: Capabilities = { shell: 'web', openFiles: false, chooseFolder: false, autostart: false, saveDir };
  return {
    capabilities,
    // The page shows it: a toast, and the browser's own notification when the user allowed them.
    notify: () => {},
    openExternal: async () => unsupported(),
    openPath: async () => unsupported(),
    revealPath: () => unsupported(),
    chooseFolder: async () => unsupported(),
    copyText: () => unsupported(),
    applyAutostart: () => {},
  };
}

/** $XDG_CONFIG_HOME/trellis/web-prefs.json, or under ~/.config when that is unset or not absolute. */
export function webPrefsPath(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  const config = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(config, 'trellis', 'web-prefs.json');
}

/** $XDG_DOWNLOAD_DIR when set and absolute, else ~/Downloads. */
export function defaultSaveDir(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  return env.XDG_DOWNLOAD_DIR?.startsWith('/') ? env.XDG_DOWNLOAD_DIR : join(home, 'Downloads');
}

export interface WebOptions {
  port: number;
  host: string;
  socketPath: string;
  /** Absolute. */
  saveDir: string;
  /** Both files, or undefined for plain HTTP (loopback only). */
  tls?: TlsFiles;
}

/** Reads `trellis web`'s arguments (args is consumed); throws UsageError with one sentence for each mistake. */
export function parseWebArgs(args: string[], env: NodeJS.ProcessEnv = process.env, home = homedir()): WebOptions {
  const portText = takeOption(args, '--port') ?? String(DEFAULT_PORT);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--port must be 0-65535, got ${portText}`);
  const host = takeOption(args, '--host') ?? '127.0.0.1';
  const certPath = takeOption(args, '--tls-cert');
  const keyPath = takeOption(args, '--tls-key');
  const saveDirText = takeOption(args, '--save-dir');
  const socketPath = resolveSocketPath(takeOption(args, '--socket'), env);
  noMoreArgs(args);
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together; give both or neither');
  }
  const tls = certPath !== undefined && keyPath !== undefined ? { certPath, keyPath } : undefined;
  if (!tls && !isLoopbackHost(host)) {
    throw new UsageError(
      `--host ${host || "''"} is reachable from other machines; give --tls-cert and --tls-key so the token ` +
        'does not cross the network in plain text',
    );
  }
  if (saveDirText === '') throw new UsageError('--save-dir needs a folder');
  const saveDir = saveDirText === undefined ? defaultSaveDir(env, home) : resolve(saveDirText);
  return { port, host, socketPath, saveDir, tls };
}

/** Creates the save folder (0700) when missing, as the user running trellis web; throws one sentence. A recursive
 *  mkdir succeeds on an existing path only when it is a folder, so nothing else needs checking. */
export async function prepareSaveDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EEXIST' || err.code === 'ENOTDIR' ? 'something there is not a folder' : err.code;
    throw new Error(
      `cannot create the folder for received files, ${dir} (${why ?? err.message}); pick another with --save-dir`,
    );
  }
}

export async function runWeb(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(WEB_HELP);
    return 0;
  }
  let o: WebOptions;
  try {
    o = parseWebArgs(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`trellis web: ${e.message}\nusage: ${WEB_USAGE}\n`);
    return 2;
  }
  let tls: TlsMaterial | undefined;
  try {
    tls = o.tls ? await loadTls(o.tls) : undefined;
    await prepareSaveDir(o.saveDir);
  } catch (e) {
    process.stderr.write(`trellis web: ${(e as Error).message}\n`);
    return 1;
  }
  const { host, port, socketPath, saveDir } = o;

  const linkOptions = { socketPath, stateDir: '', attachOnly: true };
  const link = await openEngineLink(linkOptions);
  if (link.kind === 'none') {
    // The page says so too, and the controller attaches as soon as a daemon answers.
    process.stderr.write(`trellis web: ${link.problem ?? `no daemon at ${socketPath}`} (waiting for one)\n`);
  }
  const controller = await AppController.open({
    delegate: webDelegate(saveDir),
    link,
    prefsPath: webPrefsPath(),
    reopen: () => openEngineLink(linkOptions),
    saveDir,
  });
  let server: Awaited<ReturnType<typeof startWebServer>>;
  try {
    server = await startWebServer({ backend: controller, host, port, staticDir: STATIC_DIR, tls, saveDir });
  } catch (e) {
    await controller.close();
    process.stderr.write(`trellis web: ${(e as Error).message}\n`);
    return 1;
  }
  if (!isLoopbackHost(host)) {
    process.stderr.write(`trellis web: serving on ${host || 'every address'}; anyone with the URL controls Trellis\n`);
  }
  process.stdout.write(`Trellis web UI: ${server.url}\nReceived files are saved to ${saveDir}\n`);

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
