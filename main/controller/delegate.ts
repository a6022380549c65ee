// What the controller asks of the shell around it (Electron's main process, or `trellis web`), so it runs and
// tests under plain Node: the shell implements these with its own platform calls.
import type { Capabilities } from '../../preload/api.ts';

export type NotificationKind = 'file-received' | 'login-needed' | 'key-expiring';

export interface ControllerDelegate {
  readonly capabilities: Capabilities;
  /** A desktop notification (called only when the user left notifications on). */
  notify(n: { kind: NotificationKind; title: string; body: string }): void;
  /** Opens a URL in the user's browser; the controller passes only http(s) URLs. */
  openExternal(url: string): Promise<void>;
  openPath(path: string): Promise<void>;
  revealPath(path: string): void;
  /** A native folder picker; null when cancelled. */
  chooseFolder(): Promise<string | null>;
  copyText(text: string): void;
  /** Registers (or removes) the app as a login item, hidden or not. */
  applyAutostart(startAtLogin: boolean, startHidden: boolean): void;
}
