// The app's brain, in plain Node: it owns the link to an engine (worker or daemon), keeps the snapshot the
// window shows, turns engine events into UI events and notifications, and carries out the window's calls.
// Electron's main process and `trellis web` are thin transports around it (ApiBackend).
import {
  type ApiArg,
  type ApiBackend,
  type ApiCallName,
  ApiError,
  type ApiEventMessage,
  type ApiHandlers,
  type ApiResult,
  type AppNotification,
  type AppPrefs,
  type AppSnapshot,
  type Notice,
} from '../../preload/api.ts';
import type { EngineEvent, StatusSnapshot } from '../engine/protocol.ts';
import { saveReceivedFiles, sendLocalFile } from '../engine/taildrop/client-files.ts';
import { accountViews, addAccount, hasAuthKey, logIn, removeAccount, switchAccount } from './accounts.ts';
import { toApiError } from './api-errors.ts';
import { type AppOnlyPrefs, loadAppPrefs, saveAppPrefs } from './app-prefs.ts';
import type { ControllerDelegate } from './delegate.ts';
import type { EngineLink } from './engine-link.ts';
import { EngineMirror } from './engine-mirror.ts';
import { checkProxyPair, healthView, networkingView } from './networking.ts';
import { ReceivedFiles } from './received.ts';
import { enginePrefsView } from './routes.ts';
import { TransferQueue } from './transfers.ts';
import { type TrayAction, type TrayModel, trayLoginURL, trayModel } from './tray-model.ts';
import { isWebUrl, peerViews, validatePrefs } from './views.ts';

export interface AppControllerOptions {
  delegate: ControllerDelegate;
  link: EngineLink;
  /** The app's own preferences file. */
  prefsPath: string;
  /** Opens a new link after the current one is lost (absent = stay without an engine). */
  reopen?: () => Promise<EngineLink>;
  /** The only folder received files may be saved to (trellis web's --save-dir, where the browser must not name
   *  folders on this machine): saving without a folder goes there, a call naming another is refused, and the
   *  autoSaveDir preference may only be '' (off) or this folder. */
  saveDir?: string;
}

/** Snapshots pushed to windows at most this often. */
const PUSH_INTERVAL_MS = 100;
/** A key expiring within this is worth a notification. */
const KEY_EXPIRY_WARNING_MS = 24 * 3600_000;

export class AppController implements ApiBackend {
  readonly #delegate: ControllerDelegate;
  readonly #prefsPath: string;
  readonly #listeners = new Set<(m: ApiEventMessage) => void>();
  readonly #transfers: TransferQueue;
  readonly #received: ReceivedFiles;
  readonly #engine: EngineMirror;
  readonly #saveDir: string | undefined;
  #appPrefs: AppOnlyPrefs;
  #pendingSend: string[] = [];
  #loggingIn = false;
  #unseenFiles = false;
  #warnedExpiry: string | undefined;
  #pushTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #startedOwnEngine = false;

  private constructor(o: AppControllerOptions, appPrefs: AppOnlyPrefs) {
    this.#delegate = o.delegate;
    this.#prefsPath = o.prefsPath;
    this.#saveDir = o.saveDir;
    // A folder saved by an earlier run (or another shell) is not one this run may write to.
    const autoSaveOk = o.saveDir === undefined || appPrefs.autoSaveDir === '' || appPrefs.autoSaveDir === o.saveDir;
    this.#appPrefs = autoSaveOk ? appPrefs : { ...appPrefs, autoSaveDir: '' };
    const changed = () => this.#schedulePush();
    this.#engine = new EngineMirror(o.link, {
      reopen: o.reopen,
      changed,
      onEvent: (e, previous) => this.#onEngineEvent(e, previous),
      onAttached: async () => {
        await this.#holdBackAutoConnect();
        await this.#refreshInbox();
        if (this.#appPrefs.autoSaveDir) await this.#autoSave();
      },
      onStatus: (s) => this.#checkKeyExpiry(s),
    });
    this.#transfers = new TransferQueue(
      {
        send: (peer, path, signal) => sendLocalFile(this.#engine.client(), { target: peer, path, signal }),
      },
      changed,
    );
    this.#received = new ReceivedFiles(changed);
  }

  static async open(o: AppControllerOptions): Promise<AppController> {
    const c = new AppController(o, await loadAppPrefs(o.prefsPath));
    await c.#received.watchFolder(c.#savedFolder());
    await c.#engine.start();
    return c;
  }

  onEvent(listener: (m: ApiEventMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  snapshot(): AppSnapshot {
    const s = this.#engine.status;
    const link = this.#engine.link;
    const prefs: AppPrefs = { ...enginePrefsView(s?.prefs), ...this.#appPrefs };
    return {
      link: link.kind,
      linkProblem: link.kind === 'none' ? link.problem : undefined,
      state: s?.state ?? 'NoState',
      reason: s?.reason,
      authURL: s?.authURL,
      loggingIn: this.#loggingIn,
      self: s?.self,
      peers: peerViews(s),
      domain: s?.domain,
      accounts: accountViews(this.#engine.profiles),
      health: healthView(s),
      prefs,
      exitNode: s?.exitNode,
      routes: s?.routes,
      networking: networkingView(s),
      transfers: this.#transfers.list(),
      received: this.#received.list(),
      pendingSend: [...this.#pendingSend],
      capabilities: this.#delegate.capabilities,
    };
  }

  tray(): TrayModel {
    return trayModel(this.snapshot(), this.#unseenFiles);
  }

  async trayAction(action: Exclude<TrayAction, 'open' | 'quit'>): Promise<void> {
    try {
      if (action === 'connect') await this.call('connect', undefined);
      else if (action === 'disconnect') await this.call('disconnect', undefined);
      else if (action === 'logout') await this.call('logout', undefined);
      else if (action === 'admin-console') await this.#openAdminConsole();
      else if (action === 'login-page') {
        const url = trayLoginURL(this.snapshot());
        if (url) await this.call('openExternal', url);
      } else await this.call('login', {});
    } catch (e) {
      this.#notice({ level: 'error', message: (e as Error).message });
    }
  }

  /** The account in use's admin console, when it has one (the tray offers it only then). */
  async #openAdminConsole(): Promise<void> {
    const url = this.snapshot().accounts?.find((a) => a.active)?.adminURL;
    if (url) await this.call('openExternal', url);
  }

  /** The tray's exit node and LAN access items: a pref set, with a notice instead of a throw. */
  async traySetPrefs(prefs: Partial<AppPrefs>): Promise<void> {
    await this.call('setPrefs', prefs).catch((e: Error) => this.#notice({ level: 'error', message: e.message }));
  }

  /** The tray's account items: switch, with a notice instead of a throw. */
  async traySwitchAccount(id: string): Promise<void> {
    await this.call('switchAccount', id).catch((e: Error) => this.#notice({ level: 'error', message: e.message }));
  }

  addPendingSend(paths: string[]): void {
    this.#pendingSend = [...new Set([...this.#pendingSend, ...paths])];
    this.#schedulePush();
  }

  markFilesSeen(): void {
    if (!this.#unseenFiles) return;
    this.#unseenFiles = false;
    this.#schedulePush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#pushTimer);
    await this.#received.close();
    await this.#engine.close();
  }

  async call<K extends ApiCallName>(name: K, arg: ApiArg<K>): Promise<ApiResult<K>> {
    try {
      if (!Object.hasOwn(this.#handlers, name)) throw new ApiError('bad-request', `There is no call named ${name}.`);
      return await this.#handlers[name](arg);
    } catch (e) {
      throw toApiError(e);
    }
  }

  /** One handler per call of the window API (preload/api.ts API_SCHEMA); the compiler checks none is missing. What
   *  the window sends is untrusted, so each handler still checks its argument's shape. */
  readonly #handlers: ApiHandlers = {
    getSnapshot: async () => this.snapshot(),
    connect: () => this.#command('up'),
    disconnect: () => this.#command('down'),
    login: (arg) =>
      this.#accountCall(
        () => logIn(this.#engine.client(), isRecord(arg) ? arg : {}, this.#engine.status?.prefs),
        !hasAuthKey(arg),
      ),
    logout: async () => {
      this.#loggingIn = true;
      try {
        await this.#command('logout');
      } finally {
        this.#loggingIn = false;
        this.#schedulePush();
      }
    },
    addAccount: (arg) => this.#accountCall(() => addAccount(this.#engine.client(), arg), !hasAuthKey(arg)),
    switchAccount: (arg) => this.#accountCall(() => switchAccount(this.#engine.client(), arg)),
    removeAccount: (arg) => this.#accountCall(() => removeAccount(this.#engine.client(), arg)),
    setPrefs: (arg) => this.#setPrefs(arg),
    sendFiles: async (arg) => {
      const a: Record<string, unknown> = isRecord(arg) ? arg : {};
      const { peer, paths } = a;
      if (typeof peer !== 'string' || !Array.isArray(paths) || !paths.every((p) => typeof p === 'string')) {
        throw new ApiError('bad-request', 'sendFiles needs a peer and a list of file paths');
      }
      if (paths.length === 0) throw new ApiError('bad-request', 'no files to send');
      if (this.#engine.status?.state !== 'Running') throw new ApiError('not-connected', 'connect first to send files');
      return this.#transfers.add(peer, paths);
    },
    cancelTransfer: async (arg) => {
      if (typeof arg !== 'string') throw new ApiError('bad-request', 'cancelTransfer needs a transfer id');
      await this.#transfers.cancel(arg);
    },
    clearTransfers: async () => this.#transfers.clearFinished(),
    saveReceived: (arg) => this.#saveReceived(isRecord(arg) ? arg : {}),
    openReceived: async (arg) => this.#delegate.openPath(this.#knownReceivedPath(arg)),
    revealReceived: async (arg) => this.#delegate.revealPath(this.#knownReceivedPath(arg)),
    chooseFolder: async () => this.#delegate.chooseFolder(),
    copyText: async (arg) => {
      if (typeof arg !== 'string') throw new ApiError('bad-request', 'copyText needs text');
      this.#delegate.copyText(arg);
    },
    openExternal: async (arg) => {
      if (typeof arg !== 'string' || !isWebUrl(arg)) throw new ApiError('refused', 'only http(s) links are opened');
      return this.#delegate.openExternal(arg);
    },
    dismissPendingSend: async () => {
      this.#pendingSend = [];
      this.#schedulePush();
    },
    // Down gives up the pending login in the engine (and its URL) and keeps it from reconnecting.
    cancelLogin: () => this.#command('down'),
  };

  /** A login or an account change: the window shows it under way, and the new account's state once it is done. */
  async #accountCall(run: () => Promise<void>, withoutKey = false): Promise<void> {
    this.#loggingIn = true;
    this.#schedulePush();
    try {
      await run();
    } finally {
      this.#loggingIn = false;
      await this.#engine.refresh();
    }
    // The desktop opens the login page itself (also for a login started from the tray); a browser page does.
    const url = this.#engine.status?.authURL;
    if (withoutKey && url && isWebUrl(url) && this.#delegate.capabilities.shell === 'electron')
      void this.#delegate.openExternal(url).catch(() => {});
  }

  async #setPrefs(arg: unknown): Promise<AppPrefs> {
    const { engine, app } = validatePrefs(arg, this.#engine.status);
    const dir = app.autoSaveDir;
    if (dir !== undefined && dir !== '' && this.#saveDir !== undefined && dir !== this.#saveDir) {
      throw new ApiError('refused', `Files are saved to ${this.#saveDir} only.`, { field: 'autoSaveDir' });
    }
    checkProxyPair({ ...this.#appPrefs, ...app });
    if (Object.keys(engine).length > 0) await this.#engine.client().request('setPrefs', engine);
    if (Object.keys(app).length > 0) {
      const before = this.#appPrefs;
      this.#appPrefs = { ...before, ...app };
      await saveAppPrefs(this.#prefsPath, this.#appPrefs);
      if (app.startAtLogin !== undefined || app.startHidden !== undefined) {
        this.#delegate.applyAutostart(this.#appPrefs.startAtLogin, this.#appPrefs.startHidden);
      }
      const proxies = (['socks5Listen', 'httpProxyListen'] as const).some(
        (k) => app[k] !== undefined && app[k] !== before[k],
      );
      if (proxies && this.#engine.link.kind === 'worker') {
        await this.#engine.restart('Restarting the engine with the new proxy addresses…');
      }
      if (app.autoSaveDir !== undefined && app.autoSaveDir !== before.autoSaveDir) {
        await this.#received.watchFolder(this.#savedFolder());
        if (this.#appPrefs.autoSaveDir) await this.#autoSave();
      }
    }
    await this.#engine.refresh();
    return this.snapshot().prefs;
  }

  async #saveReceived(a: Record<string, unknown>): Promise<string[]> {
    const asked = typeof a.dir === 'string' && a.dir !== '' ? a.dir : undefined;
    if (asked !== undefined && this.#saveDir !== undefined && asked !== this.#saveDir) {
      throw new ApiError('refused', `files are saved to ${this.#saveDir} only`);
    }
    const dir = asked ?? (this.#appPrefs.autoSaveDir || this.#saveDir);
    if (!dir) throw new ApiError('bad-request', 'choose a folder to save the files in');
    const names = a.names;
    if (names !== undefined && (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))) {
      throw new ApiError('bad-request', 'names must be a list of file names');
    }
    try {
      return await saveReceivedFiles(this.#engine.client(), dir, names as string[] | undefined);
    } finally {
      await this.#refreshInbox();
    }
  }

  /** The folder whose files the window lists as saved: the auto-save folder, else the fixed save folder. */
  #savedFolder(): string {
    return this.#appPrefs.autoSaveDir || this.#saveDir || '';
  }

  /** Only paths the window was shown may be opened: a compromised window cannot open arbitrary files. */
  #knownReceivedPath(arg: unknown): string {
    const path = typeof arg === 'string' ? arg : '';
    if (!this.#received.list().some((r) => r.path === path)) {
      throw new ApiError('refused', 'that is not a received file');
    }
    return path;
  }

  /**
   * An engine of the app's own (worker) reconnects on start when it was connected before; with auto-connect off
   * the user asked to start disconnected (tailscale#12756), so it goes down once, at the app's start. A daemon
   * is the machine's service and keeps its own state.
   */
  async #holdBackAutoConnect(): Promise<void> {
    const s = this.#engine.status;
    if (this.#startedOwnEngine || this.#engine.link.kind !== 'worker' || !s) return;
    this.#startedOwnEngine = true;
    if (s.prefs.autoConnect || (s.state !== 'Starting' && s.state !== 'Running')) return;
    await this.#command('down').catch(() => {});
  }

  async #command(cmd: 'up' | 'down' | 'logout'): Promise<void> {
    this.#engine.setStatus(await this.#engine.client().request(cmd, {}, { timeoutMs: 30_000 }));
  }

  #onEngineEvent(e: EngineEvent, previous: StatusSnapshot | undefined): void {
    switch (e.event) {
      case 'fileProgress':
        this.#transfers.progress(e.target, e.name, e.sent, e.total, e.bytesPerSecond);
        return;
      case 'fileReceived':
        this.#received.noteSender(e.name, e.from);
        this.#unseenFiles = true;
        this.#alert({ kind: 'file-received', title: 'File received', body: `${e.name} from ${e.from}` });
        void (this.#appPrefs.autoSaveDir ? this.#autoSave() : this.#refreshInbox());
        return;
      case 'state': {
        // Logged out behind the user's back (key expired, node deleted): say so, they will not be watching.
        const lostLogin = e.state === 'NeedsLogin' || e.state === 'NeedsMachineAuth';
        if (lostLogin && previous?.state === 'Running') {
          this.#alert({ kind: 'login-needed', title: 'Trellis needs you to log in', body: e.reason ?? '' });
        }
        return;
      }
      default:
        return;
    }
  }

  async #refreshInbox(): Promise<void> {
    const client = this.#engine.maybeClient();
    if (!client) return;
    const files = await client.request('fileList', {}).catch(() => undefined);
    if (files) this.#received.setInbox(files);
  }

  /** Moves what waits in the inbox to the auto-save folder. */
  async #autoSave(): Promise<void> {
    const dir = this.#appPrefs.autoSaveDir;
    const client = this.#engine.maybeClient();
    if (!dir || !client) return;
    try {
      await saveReceivedFiles(client, dir);
    } catch (e) {
      this.#notice({ level: 'error', message: `Could not save received files to ${dir}: ${(e as Error).message}` });
    }
    await this.#refreshInbox();
  }

  #checkKeyExpiry(s: StatusSnapshot): void {
    const expiry = s.self?.keyExpiry;
    if (!expiry || expiry === this.#warnedExpiry) return;
    const left = Date.parse(expiry) - Date.now();
    if (!(left > 0 && left < KEY_EXPIRY_WARNING_MS)) return;
    this.#warnedExpiry = expiry;
    const hours = Math.max(1, Math.round(left / 3600_000));
    this.#alert({
      kind: 'key-expiring',
      title: 'Trellis key expiring',
      body: `This device's key expires in about ${hours} h; log in again to stay connected.`,
    });
  }

  #notice(n: Notice): void {
    this.#emit({ event: 'notice', payload: n });
  }

  /** Every window hears it (toasts, browser notifications); the desktop shows it if the user wants. */
  #alert(n: AppNotification): void {
    this.#emit({ event: 'notification', payload: n });
    if (this.#appPrefs.notifications) this.#delegate.notify(n);
  }

  #schedulePush(): void {
    if (this.#pushTimer || this.#closed) return;
    this.#pushTimer = setTimeout(() => {
      this.#pushTimer = undefined;
      this.#emit({ event: 'snapshot', payload: this.snapshot() });
    }, PUSH_INTERVAL_MS);
  }

  #emit(m: ApiEventMessage): void {
    for (const l of [...this.#listeners]) {
      try {
        l(m);
      } catch {
        // A broken window must not stop the others from hearing about changes.
      }
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
