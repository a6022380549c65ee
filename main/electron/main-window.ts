// The one window: created with the hardened options, showing only our renderer page. It never navigates away,
// opens no other windows (http(s) links go to the user's browser) and is hidden, not destroyed, on close.
import { BrowserWindow, type Session, shell } from 'electron';
import { isSafeExternalUrl, isTrustedSender } from './sender-check.ts';
import { windowOptions } from './window-options.ts';

export interface MainWindowOptions {
  preloadPath: string;
  /** The renderer's index.html on disk. */
  rendererFile: string;
  rendererUrl: string;
  /** True once the app is quitting: then close really closes. */
  quitting: () => boolean;
  /** The window became visible (the file-received mark can be cleared). */
  onShown: () => void;
}

/** Web permissions (camera, notifications, geolocation …) are never granted to the page. */
export function denyAllPermissions(session: Session): void {
  session.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
}

export function createMainWindow(o: MainWindowOptions): BrowserWindow {
  const win = new BrowserWindow(windowOptions(o.preloadPath));
  const contents = win.webContents;
  contents.on('will-navigate', (event, url) => {
    if (!isTrustedSender({ url, isMainFrame: true }, o.rendererUrl)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!isTrustedSender({ url, isMainFrame: true }, o.rendererUrl)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (isSafeExternalUrl(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  win.on('close', (event) => {
    // The app lives in the tray: closing the window only hides it, Quit in the tray ends the app.
    if (o.quitting()) return;
    event.preventDefault();
    win.hide();
  });
  win.on('show', o.onShown);
  win.on('focus', o.onShown);
  void win.loadFile(o.rendererFile);
  return win;
}

/** Shows, restores and focuses the window. */
export function bringToFront(win: BrowserWindow): void {
  if (win.isMinimized()) win.restore();
  if (!win.isVisible()) win.show();
  win.focus();
}
