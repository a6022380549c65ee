// The main window's construction options, kept apart from main.ts so a plain-Node unit test can assert the
// security settings: the renderer gets no Node, runs sandboxed and isolated, and reaches main only through the
// preload's window.trellis.
import type { BrowserWindowConstructorOptions } from 'electron';

export const WINDOW_TITLE = 'Trellis';

export function windowOptions(preloadPath: string): BrowserWindowConstructorOptions {
  return {
    title: WINDOW_TITLE,
    width: 960,
    height: 680,
    minWidth: 640,
    minHeight: 480,
    // Shown on 'ready-to-show' (or not at all when starting hidden), so no blank frame flashes.
    show: false,
    autoHideMenuBar: true,
    backgroundColor: '#1e1f22',
    webPreferences: {
      preload: preloadPath,
      sandbox: true,
      contextIsolation: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
      navigateOnDragDrop: false,
    },
  };
}
