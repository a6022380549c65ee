// The one contract between the window (renderer) and the app's main side. Electron carries it over IPC
// (preload/index.ts exposes it as window.trellis); `trellis web` carries the very same calls and events over a
// WebSocket. Both sides import this file; it holds types and a few constants, no code that does I/O.
import type {
  EngineState,
  ExitNodeStatus,
  Health,
  NetworkingStatus,
  PeerPath,
  Prefs,
  RouteOffer,
  SelfNode,
} from '../main/engine/protocol.ts';

export type { EngineState, ExitNodeStatus, Health, NetworkingStatus, PeerPath, RouteOffer, SelfNode };

/** The engine's route prefs, as protocol.ts documents them (the window cannot set lastExitNodeID: the engine keeps it). */
export type RoutePrefs = Pick<
  Prefs,
  | 'exitNodeID'
  | 'lastExitNodeID'
  | 'exitNodeAllowLANAccess'
  | 'routeAll'
  | 'advertiseExitNode'
  | 'advertiseRoutes'
  | 'forwardPorts'
>;

/** Preferences the user edits in Settings: the engine's own plus the app's. */
export interface AppPrefs extends RoutePrefs {
  /** Control server base URL; '' = not chosen yet (the login view offers Tailscale's or a custom one). */
  controlURL: string;
  /** Requested host name; '' = the OS host name. */
  hostname: string;
  acceptDNS: boolean;
  /** Connect when the app starts, if logged in. */
  autoConnect: boolean;
  /** Start the app when the user logs in to the desktop. */
  startAtLogin: boolean;
  /** Start with only the tray icon, no window. */
  startHidden: boolean;
  /** Received files are moved here as they arrive; '' = they wait in the inbox until saved. */
  autoSaveDir: string;
  /** Desktop notifications (file received, login needed, key expiring). */
  notifications: boolean;
  /** Where the app's own engine offers its SOCKS5 proxy when it runs without a network device, loopback "host:port".
   *  A change restarts that engine (a daemon keeps its own). */
  socks5Listen: string;
  /** Likewise for its HTTP proxy. */
  httpProxyListen: string;
}

/** How this machine's apps reach the tailnet, as the window shows it: the engine's status plus, in userspace
 *  mode, the sentence saying how to get the full mode (a network device). */
export interface NetworkingView extends NetworkingStatus {
  fullModeAdvice?: string;
}

/** Tailscale's own control server, the default when the user does not pick a custom one. */
export const TAILSCALE_CONTROL_URL = 'https://controlplane.tailscale.com';

export interface PeerView {
  id: number;
  /** Short name (first label of dnsName). */
  name: string;
  dnsName: string;
  addresses: string[];
  os: string;
  user: string;
  /** null = the control server did not say. */
  online: boolean | null;
  /** ISO time the peer was last seen online, when the server said. */
  lastSeen?: string;
  keyExpiry?: string;
  expired: boolean;
  /** How packets reach the peer now (absent without a data path). */
  path?: PeerPath;
  /** Taildrop accepts files for this peer. */
  fileTarget: boolean;
  /** What AppPrefs.exitNodeID names to choose this peer as exit node. */
  stableID: string;
  /** The peer can be chosen as exit node (control approved its default routes). */
  exitNodeOption: boolean;
  /** Subnets the peer routes to (approved by control), as CIDRs. */
  routes: string[];
  /** This peer is the exit node in use. */
  exitNode?: boolean;
}

export type TransferState = 'queued' | 'sending' | 'done' | 'failed' | 'cancelled';

/** One file being (or having been) sent with Taildrop. */
export interface Transfer {
  id: string;
  /** The peer's short name. */
  peer: string;
  /** File name as the peer sees it. */
  name: string;
  sent: number;
  /** Bytes in the file; 0 until known. */
  total: number;
  bytesPerSecond: number;
  state: TransferState;
  /** Bytes the peer already held from an interrupted attempt. */
  resumedFrom?: number;
  /** A sentence when state is 'failed'. */
  error?: string;
  /** Unix ms. */
  startedAt: number;
}

/** A received file: waiting in the engine's inbox, or already in the auto-save folder. */
export interface ReceivedItem {
  name: string;
  size: number;
  /** Unix ms. */
  modified: number;
  where: 'inbox' | 'folder';
  /** Full path, for files in the folder (open / reveal act on it). */
  path?: string;
  /** Sender's name, when the file arrived while the app watched. */
  from?: string;
}

/** One account (profile) of the engine: its own control server, login and node. */
export interface AccountView {
  id: string;
  /** The control server, shown plainly so accounts on different servers are told apart. */
  controlURL: string;
  /** '' before the first login. */
  loginName: string;
  /** The tailnet's name (MagicDNS suffix); '' until connected once. */
  tailnet: string;
  loggedIn: boolean;
  /** The account in use. */
  active: boolean;
  /** Its admin console, where the server has one (Tailscale's) or one was set. */
  adminURL?: string;
}

/** How the app reaches an engine. */
export type EngineLinkKind = 'worker' | 'daemon' | 'none';

/** What the main side can do on this platform; the UI hides what it cannot. */
export interface Capabilities {
  /** 'electron' = the desktop app; 'web' = `trellis web` in a browser. */
  shell: 'electron' | 'web';
  /** Opening and revealing files on this desktop. */
  openFiles: boolean;
  /** A native folder picker (else the UI asks for a path). */
  chooseFolder: boolean;
  /** Autostart and start-hidden apply. */
  autostart: boolean;
  /** `trellis web` only: the one folder received files are saved to (its --save-dir). The browser cannot name a
   *  folder: Save moves files here and auto-save is this folder or off. Electron leaves it undefined. */
  saveDir?: string;
}

/** Everything the window shows; the renderer's store is this plus the notices pushed to it. */
export interface AppSnapshot {
  link: EngineLinkKind;
  /** Why no engine is reachable, as a sentence saying what to do (absent when one is). */
  linkProblem?: string;
  state: EngineState;
  /** Why the state is what it is, when that is an error. */
  reason?: string;
  /** Interactive login: the URL the user must visit. */
  authURL?: string;
  /** A login or logout under way. */
  loggingIn: boolean;
  self?: SelfNode;
  peers: PeerView[];
  /** Tailnet domain (MagicDNS suffix). */
  domain?: string;
  /** The engine's accounts, the one in use marked (absent from an engine without accounts). */
  accounts?: AccountView[];
  health: Health[];
  prefs: AppPrefs;
  /** The chosen exit node, also while it is offline (then traffic to the internet is held, not sent around it). */
  exitNode?: ExitNodeStatus;
  /** What this device offers as routes and what control approved. */
  routes?: RouteOffer;
  /** Absent while the engine has no data path open. */
  networking?: NetworkingView;
  transfers: Transfer[];
  received: ReceivedItem[];
  /** Files handed to the app (second launch, command line) waiting for the user to pick a peer. */
  pendingSend: string[];
  capabilities: Capabilities;
}

export interface LoginRequest {
  /** Control server; absent = keep the one in prefs (or Tailscale's when none). */
  controlURL?: string;
  /** Pre-auth key; absent = interactive login through the browser. */
  authKey?: string;
}

/** A new account: its control server (absent = Tailscale's) and, optionally, a pre-auth key. */
export interface AddAccountRequest {
  controlURL?: string;
  authKey?: string;
}

/** One call of the window API: its argument (undefined: none) and result types. Only the type carries them: the value
 *  is empty, and nothing reads its fields. */
export interface CallSpec<A, R> {
  readonly arg: A;
  readonly result: R;
}

function call<A, R>(): CallSpec<A, R> {
  return {} as CallSpec<A, R>;
}

/** The calls the window makes, each declared here and nowhere else: the call list, the argument and result types,
 *  TrellisApi and the handler table the controller fills are derived from it. Each takes at most one argument. */
export const API_SCHEMA = {
  getSnapshot: call<undefined, AppSnapshot>(),
  connect: call<undefined, void>(),
  disconnect: call<undefined, void>(),
  login: call<LoginRequest, void>(),
  logout: call<undefined, void>(),
  /** Adds an account, switches to it and logs it in (interactively without a key: authURL in the snapshot). */
  addAccount: call<AddAccountRequest, void>(),
  /** Switches to the account with this id (no new login: it connects if it was connected). */
  switchAccount: call<string, void>(),
  /** Logs the account with this id out and deletes it; removing the one in use switches to another. */
  removeAccount: call<string, void>(),
  setPrefs: call<Partial<AppPrefs>, AppPrefs>(),
  /** Sends files (paths the engine can read) to a peer; the new transfers' ids. */
  sendFiles: call<{ peer: string; paths: string[] }, string[]>(),
  cancelTransfer: call<string, void>(),
  /** Forgets finished transfers (done, failed, cancelled). */
  clearTransfers: call<undefined, void>(),
  /** Moves files waiting in the inbox (all, or those named) into dir (default: the auto-save folder, or under
   *  `trellis web` its save folder; there dir is refused). */
  saveReceived: call<{ dir?: string; names?: string[] }, string[]>(),
  openReceived: call<string, void>(),
  revealReceived: call<string, void>(),
  /** A native folder picker; null when the user cancels. */
  chooseFolder: call<undefined, string | null>(),
  copyText: call<string, void>(),
  /** Opens an http(s) URL in the user's browser; other schemes are refused. */
  openExternal: call<string, void>(),
  /** Drops the files waiting for a peer choice. */
  dismissPendingSend: call<undefined, void>(),
  /** Gives up a pending interactive login (its URL stops working). */
  cancelLogin: call<undefined, void>(),
};

export type ApiCallName = keyof typeof API_SCHEMA;
export type ApiArg<K extends ApiCallName> = (typeof API_SCHEMA)[K]['arg'];
export type ApiResult<K extends ApiCallName> = (typeof API_SCHEMA)[K]['result'];

/** What answers each call on the main side: the controller's table, checked by the compiler to hold every call. */
export type ApiHandlers = { [K in ApiCallName]: (arg: ApiArg<K>) => Promise<ApiResult<K>> };

/** Every call name, for the transports to register and to validate what arrives. */
export const API_CALLS = Object.keys(API_SCHEMA) as readonly ApiCallName[];

export function isApiCallName(v: unknown): v is ApiCallName {
  return typeof v === 'string' && (API_CALLS as readonly string[]).includes(v);
}

/** A short message for the user, shown as a toast. */
export interface Notice {
  level: 'info' | 'error';
  message: string;
}

/** Something worth a desktop notification (Electron shows it itself; `trellis web` pages use the browser's). */
export interface AppNotification {
  kind: 'file-received' | 'login-needed' | 'key-expiring';
  title: string;
  body: string;
}

/** Events main pushes to the window. */
export interface ApiEvents {
  /** The whole snapshot, after any change (coalesced, at most ~10 per second). */
  snapshot: AppSnapshot;
  notice: Notice;
  /** Sent to every window whether or not the user wants desktop notifications; the window decides. */
  notification: AppNotification;
}

export type ApiEventName = keyof ApiEvents;

/** Error codes a call may fail with; message is already a sentence for the user. */
export type ApiErrorCode =
  | 'bad-request'
  | 'not-connected'
  | 'no-engine'
  | 'unsupported'
  | 'refused'
  | 'engine'
  | 'internal';

/** The form field an error is about (the login form's, or a preference in Settings). */
/** The form fields an error can be about. */
export const API_ERROR_FIELDS = [
  'controlURL',
  'authKey',
  'hostname',
  'autoSaveDir',
  'advertiseRoutes',
  'exitNodeID',
  'socks5Listen',
  'httpProxyListen',
] as const;
export type ApiErrorField = (typeof API_ERROR_FIELDS)[number];

export interface ApiErrorBody {
  code: ApiErrorCode;
  message: string;
  /** The form field at fault, when the error is about one. */
  field?: ApiErrorField;
  /** The raw error behind the sentence, for a "details" disclosure. */
  detail?: string;
}

/** What a call carries back over any transport: errors as values, so none loses its code on the way. */
export type ApiOutcome<T> = { ok: true; result: T } | { ok: false; error: ApiErrorBody };

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly field?: ApiErrorField;
  readonly detail?: string;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    more: { field?: ApiErrorField; detail?: string } = {},
  ) {
    super(message);
    if (more.field) this.field = more.field;
    if (more.detail) this.detail = more.detail;
  }

  /** What a transport carries. */
  toBody(): ApiErrorBody {
    const body: ApiErrorBody = { code: this.code, message: this.message };
    if (this.field) body.field = this.field;
    if (this.detail) body.detail = this.detail;
    return body;
  }

  /** Rebuilt on the window's side; field and detail are kept only when well-formed. */
  static fromBody(b: ApiErrorBody): ApiError {
    const fields: readonly unknown[] = API_ERROR_FIELDS;
    const field = fields.includes(b.field) ? b.field : undefined;
    const detail = typeof b.detail === 'string' ? b.detail : undefined;
    return new ApiError(b.code, b.message, { field, detail });
  }
}

/** One pushed event, as a transport carries it. */
export type ApiEventMessage = { [E in ApiEventName]: { event: E; payload: ApiEvents[E] } }[ApiEventName];

/** Bytes of dropped files carried to the machine so far (`trellis web` only: Electron sends by path). */
export interface UploadProgress {
  loaded: number;
  total: number;
}

/** A file dropped on the window (a DOM File has these and more; each transport reads it its own way). */
export interface DroppedFile {
  readonly name: string;
  readonly size: number;
}

/** The API as the window sees it: every call returns a promise; on() subscribes to pushed events. */
export type TrellisApi = {
  [K in ApiCallName]: ApiArg<K> extends undefined
    ? () => Promise<ApiResult<K>>
    : (arg: ApiArg<K>) => Promise<ApiResult<K>>;
} & {
  on<E extends ApiEventName>(event: E, listener: (payload: ApiEvents[E]) => void): () => void;
  /** Sends files dropped on the window: Electron resolves their paths (webUtils.getPathForFile), the web
   *  bridge streams their bytes to the machine first (onUpload hears how far). Resolves with the transfers' ids. */
  sendDroppedFiles(
    peer: string,
    files: readonly DroppedFile[],
    onUpload?: (progress: UploadProgress) => void,
  ): Promise<string[]>;
};

/**
 * What Electron's preload exposes as window.trellis: the IPC transport with outcomes as values. contextBridge
 * copies a thrown Error's message but drops its other properties, so the window unwraps outcomes itself (into
 * ApiError, code kept) and builds its TrellisApi from this.
 */
export interface TrellisIpc {
  call(name: ApiCallName, arg?: unknown): Promise<ApiOutcome<unknown>>;
  /** Subscribes to every pushed event; returns the unsubscribe function. */
  onEvent(listener: (message: ApiEventMessage) => void): () => void;
  /** The path on disk of each dropped file (webUtils.getPathForFile); '' for a file that has none. */
  pathsOf(files: readonly DroppedFile[]): string[];
}

/** What a transport serves: the controller implements it (one per app, shared by every window or socket). */
export interface ApiBackend {
  call<K extends ApiCallName>(name: K, arg: ApiArg<K>): Promise<ApiResult<K>>;
  onEvent(listener: (message: ApiEventMessage) => void): () => void;
}

/** IPC channel names used by the Electron transport. */
export const IPC_INVOKE_CHANNEL = 'trellis:call';
export const IPC_EVENT_CHANNEL = 'trellis:event';

/** Messages of the WebSocket transport (`trellis web`). */
export type BridgeClientMessage = { type: 'call'; id: number; name: ApiCallName; arg?: unknown };
export type BridgeServerMessage =
  | { type: 'reply'; id: number; outcome: ApiOutcome<unknown> }
  | { type: 'event'; event: ApiEventName; payload: unknown };
