// The controller's ControllerDelegate in Electron: notifications, the user's browser and file manager, the
// folder picker, the clipboard and autostart.
import { app, type BrowserWindow, clipboard, dialog, Notification, type OpenDialogOptions, shell } from 'electron';
import type { Capabilities } from '../../preload/api.ts';
import type { ControllerDelegate, NotificationKind } from '../controller/delegate.ts';
import { applyLinuxAutostart } from './autostart-linux.ts';
import { HIDDEN_FLAG } from './launch-args.ts';
import { isSafeExternalUrl } from './sender-check.ts';

export interface ShellDelegateOptions {
  /** The window dialogs belong to, when one is open. */
  window: () => BrowserWindow | undefined;
  /** Brings the window up (a notification was clicked). */
  showWindow: () => void;
}

/** The command an autostart entry runs: the AppImage when running from one, else this executable (plus the
 *  app's directory when Electron runs it unpackaged, in development). */
function launchCommand(): string[] {
  const executable = process.env.APPIMAGE || process.execPath;
  return app.isPackaged ? [executable] : [executable, app.getAppPath()];
}

export class ElectronShellDelegate implements ControllerDelegate {
  readonly capabilities: Capabilities = { shell: 'electron', openFiles: true, chooseFolder: true, autostart: true };
  readonly #opts: ShellDelegateOptions;

  constructor(opts: ShellDelegateOptions) {
    this.#opts = opts;
  }

  notify(n: { kind: NotificationKind; title: string; body: string }): void {
    if (!Notification.isSupported()) return;
    const notification = new Notification({ title: n.title, body: n.body });
    // Each kind asks the user to look at the window: the inbox, the login view, the key's expiry.
    notification.on('click', () => this.#opts.showWindow());
    notification.show();
  }

  async openExternal(url: string): Promise<void> {
    if (!isSafeExternalUrl(url)) throw new Error(`Only web addresses open in the browser, not ${url}`);
    await shell.openExternal(url);
  }

  async openPath(path: string): Promise<void> {
    // shell.openPath reports failure as a message rather than throwing.
    const problem = await shell.openPath(path);
    if (problem) throw new Error(problem);
  }

  revealPath(path: string): void {
    shell.showItemInFolder(path);
  }

  async chooseFolder(): Promise<string | null> {
    const options: OpenDialogOptions = { properties: ['openDirectory', 'createDirectory'] };
    const win = this.#opts.window();
    const picked = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    return picked.canceled || picked.filePaths.length === 0 ? null : picked.filePaths[0];
  }

  copyText(text: string): void {
    clipboard.writeText(text);
  }

  applyAutostart(startAtLogin: boolean, startHidden: boolean): void {
    if (process.platform === 'linux') {
      applyLinuxAutostart(startAtLogin, startHidden, launchCommand());
      return;
    }
    // args reach the app on Windows; on macOS a hidden start comes from prefs.startHidden, read at launch.
    app.setLoginItemSettings({ openAtLogin: startAtLogin, args: startHidden ? [HIDDEN_FLAG] : [] });
  }
}
