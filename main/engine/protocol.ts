// The engine's message protocol: the one contract between the engine and whoever drives it — the app's
// controller over a worker MessagePort, or the CLI over the daemon's local socket. Plain JSON-safe values only.

/** Tailscale's backend states, with the same meaning. */
export type EngineState = 'NoState' | 'NeedsLogin' | 'NeedsMachineAuth' | 'Starting' | 'Running' | 'Stopped';

export interface Prefs {
  /** Control server base URL, e.g. "https://headscale.example.com" or "http://127.0.0.1:8080". */
  controlURL: string;
  /** Requested host name; empty = the OS host name. */
  hostname: string;
  acceptDNS: boolean;
  /** Connect as soon as the engine starts (when logged in). */
  autoConnect: boolean;
  /** The user wants to be connected (up) rather than disconnected (down). */
  wantRunning: boolean;
  /** The account's admin console, when its server has one elsewhere than Tailscale's (empty = derived). */
  adminURL?: string;
  /** The peer (its StableID) all traffic leaves through; '' = none. Stays chosen while that peer is offline. */
  exitNodeID: string;
  /** The exit node chosen before this one was cleared, offered first by the pickers ('' = none yet). */
  lastExitNodeID: string;
  /** With an exit node, the physical interfaces' LANs stay reachable directly. */
  exitNodeAllowLANAccess: boolean;
  /** Accept the subnet routes peers offer (tailscale's --accept-routes, pref RouteAll). */
  routeAll: boolean;
  /** Offer this node as an exit node (advertises 0.0.0.0/0 and ::/0). */
  advertiseExitNode: boolean;
  /** Subnets this node offers to the tailnet, as canonical CIDRs. */
  advertiseRoutes: string[];
  /**
   * TCP ports of this node's tailnet addresses forwarded to local services: "PORT" or "TAILNET_PORT=LOCAL_PORT"
   * (to 127.0.0.1:LOCAL_PORT). Only userspace networking forwards; with a TUN the local listener is reachable.
   */
  forwardPorts: string[];
}

/** One account: its own control server, keys, prefs and login. */
export interface ProfileInfo {
  /** Four hex digits, stable for the life of the profile. */
  id: string;
  controlURL: string;
  /** The login name the server gave; '' before the first login. */
  loginName: string;
  /** The tailnet (its MagicDNS domain); '' until a network map came. */
  tailnet: string;
  loggedIn: boolean;
  /** The admin console, where the server has one (Tailscale's) or one was set. */
  adminURL?: string;
}

export interface ProfileList {
  /** The active profile's id. */
  current: string;
  profiles: ProfileInfo[];
}

export interface SelfNode {
  id: number;
  /** Fully qualified MagicDNS name without the trailing dot. */
  dnsName: string;
  /** Short host name (first label of dnsName). */
  name: string;
  /** Tailnet addresses, e.g. ["100.64.0.1", "fd7a:115c:a1e0::1"]. */
  addresses: string[];
  user: string;
  /** ISO time when the node key expires; undefined = never. */
  keyExpiry?: string;
}

export interface PeerSummary {
  id: number;
  name: string;
  dnsName: string;
  addresses: string[];
  /** null = the server did not say. */
  online: boolean | null;
  os: string;
  user: string;
  lastSeen?: string;
  keyExpiry?: string;
  expired: boolean;
  /** How packets reach this peer, when the data path runs. */
  path?: PeerPath;
  /** The peer's StableID (what prefs.exitNodeID names). */
  stableID: string;
  /** Control approved both default routes for this peer: it can be chosen as exit node. */
  exitNodeOption: boolean;
  /** Subnets control approved for this peer (default routes left out), as CIDRs. */
  routes: string[];
  /** This peer is the exit node in use. */
  exitNode?: boolean;
}

export interface PeerPath {
  via: 'direct' | 'derp' | 'none';
  /** The direct endpoint "ip:port" in use. */
  endpoint?: string;
  derpRegion?: number;
  /** The region's name in the DERP map (e.g. "Frankfurt"), when the map gives one. */
  derpRegionName?: string;
  /** The region's short code in the DERP map (e.g. "fra"), which `tailscale status` prints for a relayed path. */
  derpRegionCode?: string;
  latencyMs?: number;
  /** Unix seconds of the latest WireGuard handshake; 0 = never. */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface Health {
  /** Stable identifier, e.g. "control-unreachable", "no-tun-privilege". */
  code: string;
  message: string;
}

export interface StatusSnapshot {
  state: EngineState;
  prefs: Prefs;
  self?: SelfNode;
  peers: PeerSummary[];
  /** Tailnet domain (MagicDNS suffix), when known. */
  domain?: string;
  /** Pending interactive-login URL. */
  authURL?: string;
  /** Why the state is what it is when that is an error (e.g. "node key expired"). */
  reason?: string;
  health: Health[];
  /** Taildrop targets (names) when connected. */
  fileTargets?: string[];
  /** What the data path dropped or refused since it opened (absent without a data path). */
  counters?: DataPathCounters;
  /** The account in use. */
  profile?: ProfileInfo;
  /** The engine's per-packet cipher: libsodium (sodium-native), or @noble/ciphers when the addon did not load. */
  crypto?: CryptoStatus;
  /** The chosen exit node, when prefs name one (also when it is offline or gone from the netmap). */
  exitNode?: ExitNodeStatus;
  /** What this node offers and what control approved of it. */
  routes?: RouteOffer;
  /** How packets reach this machine's apps (absent while no data path is open). */
  networking?: NetworkingStatus;
}

export interface NetworkingStatus {
  /** How packets reach this machine's apps: a TUN device, or the userspace stack (apps use the proxies). */
  mode: 'tun' | 'userspace';
  /** Why userspace mode runs when it was not asked for (e.g. the TUN needs root), one plain sentence. */
  reason?: string;
  /** The proxies listening, "host:port" (IPv6 as "[::1]:1055"). */
  socks5?: string;
  httpProxy?: string;
}

export interface ExitNodeStatus {
  id: string;
  /** Its name, or the id when the netmap no longer has it. */
  name: string;
  /** null = the server did not say; false = offline (traffic to the internet is held, not sent in the clear). */
  online: boolean | null;
  /** The peer is in the netmap and offers an exit node, so traffic goes through it. */
  active: boolean;
}

export interface RouteOffer {
  /** What this node advertises (Hostinfo.RoutableIPs): the subnets, plus both default routes as exit node. */
  advertised: string[];
  /** Of those, what control approved (this node's AllowedIPs beyond its own addresses). */
  approved: string[];
}

export interface CryptoStatus {
  /** ChaCha20-Poly1305 for WireGuard transport messages and ts2021 records. */
  aead: 'libsodium' | 'noble';
  /** Why the fallback runs, when it does. */
  fallbackReason?: string;
}

/** Drops and refusals of the data path: what a hostile or broken network costs, without crashing anything. */
export interface DataPathCounters {
  /** Inbound packets the netmap's packet filter dropped. */
  filterDropped: number;
  /** WireGuard datagrams refused (bad size or MAC, unknown peer or index, failed auth, replay, foreign source). */
  wgRejected: number;
  /** Disco packets refused: unknown sender key, box that does not open, malformed. */
  discoRejected: number;
  /** STUN packets answering no request of ours (forged, late or unsolicited). */
  stunUnsolicited: number;
  /** DERP packets from a key that is not a netmap peer. */
  derpFromUnknown: number;
  /** DERP connections ended because the server sent bytes we cannot accept. */
  derpProtocolErrors: number;
  derpDialFailures: number;
  /** DNS queries to quad-100 (100.100.100.100 / fd7a:115c:a1e0::53), and those dropped without an answer. */
  dnsQueries: number;
  dnsDropped: number;
  /** TCP super-packets read from the TUN and split (TSO), and frames whose offload header was unusable (dropped). */
  tunSuperPackets: number;
  tunOffloadDropped: number;
}

export interface StartOptions {
  /** Directory holding keys and prefs (created 0700 if missing). */
  stateDir: string;
}

export interface LoginOptions {
  /** Pre-auth key; absent = interactive login (a browseToURL event follows). */
  authKey?: string;
}

export interface PingResult {
  peer: string;
  address: string;
  via: 'direct' | 'derp';
  endpoint?: string;
  derpRegion?: number;
  latencyMs: number;
}

export interface NetcheckReport {
  /** A STUN round trip worked over UDP. */
  udp: boolean;
  /** Our endpoints as STUN servers saw them. */
  publicEndpoints: string[];
  /** STUN servers in different regions saw different mappings: a hard (endpoint-dependent) NAT. */
  mappingVariesByDestIP: boolean;
  /** The home DERP region netcheck chose (0 = none yet). */
  preferredDERP: number;
  /** Region id → round-trip ms, by STUN, or by TCP connect when UDP is blocked. */
  regionLatencyMs: Record<string, number>;
  latencyMethod: 'stun' | 'tcp' | 'none';
  /** Regions with an open DERP connection (home, and peers' homes in use). */
  derpConnected: number[];
  /** Home DERP region and its round-trip time over the DERP connection. */
  derp?: { region: number; latencyMs: number };
  /** Endpoints reported to control (LAN and STUN). */
  endpoints: string[];
}

/** One command of the schema: its argument and result types. Only the type carries them: the value is empty, and
 *  nothing reads its fields (they exist for the compiler, as in Mullvad's ipc-schema). */
export interface CommandSpec<A, R> {
  readonly args: A;
  readonly result: R;
}

function command<A, R>(): CommandSpec<A, R> {
  return {} as CommandSpec<A, R>;
}

/** The engine's commands and their replies: a command is declared here and nowhere else. The command list, the
 *  request and reply types and the handler table every engine must fill are derived from it. */
export const ENGINE_COMMANDS = {
  start: command<StartOptions, StatusSnapshot>(),
  setPrefs: command<Partial<Prefs>, Prefs>(),
  login: command<LoginOptions, StatusSnapshot>(),
  logout: command<Record<string, never>, StatusSnapshot>(),
  up: command<Record<string, never>, StatusSnapshot>(),
  down: command<Record<string, never>, StatusSnapshot>(),
  status: command<Record<string, never>, StatusSnapshot>(),
  ping: command<{ target: string; timeoutMs?: number }, PingResult>(),
  netcheck: command<Record<string, never>, NetcheckReport>(),
  /** The accounts, in the order they were added. */
  listProfiles: command<Record<string, never>, ProfileList>(),
  /** A new account (its control server, when given) made the active one; log in next. An active account that
   *  never logged in is reused rather than left behind empty. */
  addProfile: command<{ controlURL?: string }, StatusSnapshot>(),
  /** Stops the active account and starts the one named (id, login name or tailnet), as its prefs say. */
  switchProfile: command<{ profile: string }, StatusSnapshot>(),
  /** Logs the account out and deletes it with its keys; removing the active one switches to the next. */
  removeProfile: command<{ profile: string }, ProfileList>(),
  /** Taildrop: peers we may send files to. */
  fileTargets: command<Record<string, never>, FileTarget[]>(),
  /** Sends a file to a target; fileProgress events while it goes. The caller opens the file itself and attaches
   *  its bytes as the request's source (size = the source's size): the engine never opens a path a client names.
   *  Aborting the request cancels the send. fdToken: the file was also handed to the daemon as a
   *  descriptor (fdpass/handover.ts); the daemon reads that instead, and takes the token out before the engine. */
  fileSend: command<{ target: string; name: string; size: number; fdToken?: string }, FileSendResult>(),
  /** Files received and waiting in the inbox. */
  fileList: command<Record<string, never>, ReceivedFile[]>(),
  /** Up to MAX_READ_BYTES of a received file from offset (fewer at its end): the caller writes it where it wants,
   *  as itself. */
  fileRead: command<{ name: string; offset: number; length: number }, Uint8Array>(),
  /** Removes a received file from the inbox (once the caller has saved it). */
  fileDelete: command<{ name: string }, { deleted: boolean }>(),
};

export type CommandMap = typeof ENGINE_COMMANDS;

/** The most one read of a source or of a received file carries. */
export const MAX_READ_BYTES = 1024 * 1024;

/** Bytes of a file the caller opened as itself, read on demand by the engine. */
export interface ByteSource {
  readonly size: number;
  /** length ≤ MAX_READ_BYTES; resolves with length bytes, fewer only at the end of the file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Each read's bytes are the reader's alone (they came over a channel and nothing else holds them), so a reader
   * may move their buffer to another thread rather than copy it (ownedBuffer).
   */
  readonly readsOwned?: boolean;
}

/** The buffer of bytes from a source with readsOwned, when the bytes span all of it: it may be transferred. */
export function ownedBuffer(source: ByteSource, bytes: Uint8Array): ArrayBuffer | undefined {
  const b = bytes.buffer;
  if (!source.readsOwned || !(b instanceof ArrayBuffer)) return undefined;
  return bytes.byteOffset === 0 && bytes.byteLength === b.byteLength && b.byteLength > 0 ? b : undefined;
}

/** What travels with a request besides its args. */
export interface RequestContext {
  /** Aborted when the caller cancels the request or goes away. */
  signal?: AbortSignal;
  /** The caller's file, for fileSend. */
  source?: ByteSource;
}

export interface FileTarget {
  name: string;
  online: boolean;
}

export interface FileSendResult {
  target: string;
  name: string;
  total: number;
  /** Bytes the receiver already had from an interrupted attempt (not sent again). */
  resumedFrom: number;
}

export interface ReceivedFile {
  name: string;
  size: number;
  /** Unix ms. */
  modified: number;
}

export type CommandName = keyof CommandMap;

export interface Request<C extends CommandName = CommandName> {
  type: 'request';
  id: number;
  cmd: C;
  args: CommandMap[C]['args'];
}

/** Error codes every UI can map to a sentence; message is already a sentence. */
export type ErrorCode =
  | 'bad-request'
  | 'not-started'
  | 'no-control-url'
  | 'control-unreachable'
  | 'control-protocol'
  | 'login-failed'
  | 'auth-key-invalid'
  | 'permission-denied'
  | 'no-such-peer'
  | 'no-data-path'
  | 'timeout'
  | 'transfer-failed'
  | 'internal';

export interface EngineErrorBody {
  code: ErrorCode;
  message: string;
}

export type Reply =
  | { type: 'reply'; id: number; ok: true; result: unknown }
  | { type: 'reply'; id: number; ok: false; error: EngineErrorBody };

export type EngineEvent =
  | { type: 'event'; event: 'state'; state: EngineState; reason?: string }
  | { type: 'event'; event: 'browseToURL'; url: string }
  | { type: 'event'; event: 'netmap'; self?: SelfNode; peers: PeerSummary[]; domain?: string }
  | { type: 'event'; event: 'health'; health: Health[] }
  | { type: 'event'; event: 'profiles'; profiles: ProfileList }
  | { type: 'event'; event: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | {
      type: 'event';
      event: 'fileProgress';
      target: string;
      name: string;
      sent: number;
      total: number;
      bytesPerSecond: number;
    }
  | { type: 'event'; event: 'fileReceived'; name: string; size: number; from: string };

export type EngineMessage = Reply | EngineEvent;

/** A typed error carried across the protocol. */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  toBody(): EngineErrorBody {
    return { code: this.code, message: this.message };
  }
}

/** What the engine exposes to a transport (worker port or socket): one handler per command, and events. */
export interface EngineApi {
  handle<C extends CommandName>(
    cmd: C,
    args: CommandMap[C]['args'],
    ctx?: RequestContext,
  ): Promise<CommandMap[C]['result']>;
  onEvent(listener: (e: EngineEvent) => void): () => void;
  close(): Promise<void>;
}

/** Every command name, in the schema's order. */
export const COMMANDS = Object.keys(ENGINE_COMMANDS) as readonly CommandName[];

/** What answers each command: an engine's table, checked by the compiler to hold every command of the schema. */
export type CommandHandlers = {
  [C in CommandName]: (args: CommandMap[C]['args'], ctx: RequestContext) => Promise<CommandMap[C]['result']>;
};

export function isCommandName(v: unknown): v is CommandName {
  return typeof v === 'string' && (COMMANDS as readonly string[]).includes(v);
}
