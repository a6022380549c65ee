// The Electron app: one instance, a tray icon, one window (hidden to the tray on close), the controller behind
// both. The logic lives in main/controller; this file only wires Electron to it.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { app, type BrowserWindow, session } from 'electron';
import { AppController } from '../controller/app-controller.ts';
import { openAppEngineLink } from '../controller/engine-link.ts';
import type { TrayAction } from '../controller/tray-model.ts';
import { resolveSocketPath } from '../engine/ipc/socket-path.ts';
import { registerIpc } from './ipc.ts';
import { parseLaunchArgs } from './launch-args.ts';
import { bringToFront, createMainWindow, denyAllPermissions } from './main-window.ts';
import { ElectronShellDelegate } from './shell-delegate.ts';
import { TrayView } from './tray.ts';

// Unpackaged (`electron .`), argv[1] is the app's path; packaged, only the executable precedes the arguments.
const ARGV_SKIP = app.isPackaged ? 1 : 2;

const appRoot = app.getAppPath();
const rendererFile = join(appRoot, 'renderer', 'dist', 'index.html');
const rendererUrl = pathToFileURL(rendererFile).href;
const preloadPath = join(appRoot, 'dist', 'preload', 'index.cjs');

let controller: AppController | undefined;
let tray: TrayView | undefined;
let mainWindow: BrowserWindow | undefined;
let offIpc: (() => void) | undefined;
let quitting = false;
let closed = false;
/** Files named by launches that arrived before the controller was ready. */
const earlyFiles: string[] = [];

function currentWindow(): BrowserWindow | undefined {
  return mainWindow && !mainWindow.isDestroyed() ? mainWindow : undefined;
}

function showWindow(): void {
  const existing = currentWindow();
  if (existing) {
    bringToFront(existing);
    return;
  }
  const created = createMainWindow({
    preloadPath,
    rendererFile,
    rendererUrl,
    quitting: () => quitting,
    onShown: () => controller?.markFilesSeen(),
  });
  mainWindow = created;
  created.once('ready-to-show', () => bringToFront(created));
}

function forwardFiles(files: string[]): void {
  if (files.length === 0) return;
  if (controller) controller.addPendingSend(files);
  else earlyFiles.push(...files);
}

/** Ends the app: the controller (and a worker engine with it) first, then Electron. */
async function quit(): Promise<void> {
  if (quitting) return;
  quitting = true;
  offIpc?.();
  try {
    await controller?.close();
  } catch (e) {
    console.error(`closing the controller failed: ${(e as Error).message}`);
  }
  tray?.destroy();
  closed = true;
  app.quit();
}

function onTrayAction(action: TrayAction): void {
  if (action === 'open') showWindow();
  else if (action === 'quit') void quit();
  else void controller?.trayAction(action);
}

async function start(): Promise<void> {
  const launch = parseLaunchArgs(process.argv, ARGV_SKIP, process.cwd());
  forwardFiles(launch.files);
  denyAllPermissions(session.defaultSession);

  const userData = app.getPath('userData');
  const prefsPath = join(userData, 'app-prefs.json');
  // Without a daemon the app's own engine takes a TUN if it may, else userspace networking behind its proxies.
  const linkOptions = {
    socketPath: resolveSocketPath(undefined),
    stateDir: join(userData, 'engine'),
    tunName: 'trellis0',
    prefsPath,
  };
  const delegate = new ElectronShellDelegate({ window: currentWindow, showWindow });
  const opened = await AppController.open({
    delegate,
    link: await openAppEngineLink(linkOptions),
    prefsPath,
    reopen: () => openAppEngineLink(linkOptions),
  });
  controller = opened;
  forwardFiles(earlyFiles.splice(0));

  offIpc = registerIpc({ backend: opened, rendererUrl, window: currentWindow });
  tray = new TrayView(opened.tray(), {
    onAction: onTrayAction,
    onSwitchAccount: (id) => void opened.traySwitchAccount(id),
    onSetPrefs: (prefs) => void opened.traySetPrefs(prefs),
  });
  opened.onEvent((m) => {
    if (m.event === 'snapshot') tray?.render(opened.tray());
  });
  // Files handed over at launch wait in the window for the user to pick a peer, so they open it too.
  const hidden = (launch.hidden || opened.snapshot().prefs.startHidden) && launch.files.length === 0;
  if (!hidden) showWindow();
}

if (!app.requestSingleInstanceLock()) {
  // Another instance runs: it receives our argv through 'second-instance'.
  app.quit();
} else {
  app.on('second-instance', (_event, argv, workingDirectory) => {
    forwardFiles(parseLaunchArgs(argv, ARGV_SKIP, workingDirectory).files);
    if (controller) showWindow();
  });
  // The app stays in the tray with no window open.
  app.on('window-all-closed', () => {});
  app.on('activate', () => {
    if (controller) showWindow();
  });
  app.on('before-quit', (event) => {
    // Quitting from the OS (Cmd+Q, logout) goes through quit() too, so the engine is closed first.
    if (closed) return;
    event.preventDefault();
    void quit();
  });
  app
    .whenReady()
    .then(start)
    .catch((e: unknown) => {
      console.error(`Trellis failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      app.exit(1);
    });
}
