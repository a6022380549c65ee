import type { NodeKeys } from './control/keys.ts';
import { NetMap } from './control/netmap.ts';
import { Registrar, toEngineError } from './control/registrar.ts';
import { Connection } from './core/connection.ts';
import { netcheck, peersWithPaths, pingPeer, runningDataPath } from './core/diagnostics.ts';
import type { EngineOptions } from './core/engine-options.ts';
import { EngineEvents } from './core/events.ts';
import { copyPrefs, type PersistedState, saveState } from './core/prefs-store.ts';
import { announceProfiles, checkControlURL, type ProfileHost, profileCommands } from './core/profile-commands.ts';
import { ProfileStore, profileInfo, readProfile } from './core/profiles.ts';
import { cryptoStatus, keyExpired, peerSummaries, routeOffer, selfSummary, tailnetOf } from './core/status.ts';
import type { DataPath } from './datapath/datapath.ts';
import {
  type CommandHandlers,
  type CommandMap,
  type CommandName,
  type EngineApi,
  EngineError,
  type EngineEvent,
  type EngineState,
  type LoginOptions,
  type Prefs,
  type RequestContext,
  type StatusSnapshot,
} from './protocol.ts';
import { setBypassMarking } from './routes/bypass-socket.ts';
import { exitNodeHealth, exitNodeStatus, markExitNode } from './routes/exit-node.ts';
import { applyRoutePrefs } from './routes/route-prefs.ts';
import { NodeServices } from './services/node-services.ts';
import { checkForwardPortsPref } from './services/port-forward.ts';
import { fileCommands } from './services/taildrop-commands.ts';

/** What exists once the engine has started (keys, registrar, profiles); a typed error before. */
function started<T>(v: T | undefined): T {
  if (v === undefined) throw new EngineError('not-started', 'the engine has not been started');
  return v;
}

class Engine implements EngineApi {
  private stateDir: string | undefined;
  private profiles: ProfileStore | undefined;
  private profileId = '';
  private keys: NodeKeys | undefined;
  private persisted: PersistedState | undefined;
  private state: EngineState = 'NoState';
  private reason: string | undefined;
  private authURL: string | undefined;
  private netmap = new NetMap();
  private registrar: Registrar | undefined;
  private services: NodeServices | undefined;
  private readonly events: EngineEvents;
  private readonly conn: Connection;

  constructor(private readonly o: EngineOptions) {
    if (o.dataPath?.networking === 'userspace') setBypassMarking(false); // no SO_MARK: nothing of the OS is ours
    this.events = new EngineEvents(o.log);
    this.conn = new Connection({
      options: o,
      events: this.events,
      keys: () => started(this.keys),
      prefs: () => this.prefs,
      services: () => this.services,
      onMapMessage: (m) => this.onMapMessage(m),
      onFatal: (reason) => void this.loggedOut(reason),
    });
  }

  private get dataPath(): DataPath | undefined {
    return this.conn.dataPath;
  }

  onEvent(listener: (e: EngineEvent) => void): () => void {
    return this.events.on(listener);
  }

  private setState(state: EngineState, reason?: string): void {
    if (state === this.state && reason === this.reason) return;
    this.state = state;
    this.reason = reason;
    this.events.log('info', `state ${state}${reason ? `: ${reason}` : ''}`);
    this.events.emit({ type: 'event', event: 'state', state, reason });
  }

  private get prefs(): Prefs {
    if (!this.persisted) throw new EngineError('not-started', 'the engine has not been started');
    return this.persisted.prefs;
  }

  private selfNode(): ReturnType<typeof selfSummary> {
    const self = selfSummary(this.netmap);
    if (self && !self.user) self.user = this.persisted?.loginName ?? '';
    return self;
  }

  private snapshot(): StatusSnapshot {
    const peers = markExitNode(peersWithPaths(this.netmap, this.dataPath), this.prefs.exitNodeID);
    const exitNode = exitNodeStatus(peers, this.prefs);
    return {
      state: this.state,
      prefs: copyPrefs(this.prefs),
      self: this.selfNode(),
      peers,
      ...(exitNode ? { exitNode } : {}),
      domain: this.netmap.domain || undefined,
      authURL: this.authURL,
      reason: this.reason,
      health: this.events.healthList(),
      crypto: cryptoStatus(),
      routes: routeOffer(this.prefs, this.netmap.self),
      ...(this.persisted ? { profile: profileInfo(this.profileId, this.persisted) } : {}),
      ...(this.dataPath ? { counters: this.dataPath.counters() } : {}),
      ...(this.dataPath ? { networking: { ...this.dataPath.networking(), ...this.services?.proxyStatus() } } : {}),
      ...(this.services && this.state === 'Running' ? { fileTargets: this.services.fileTargetNames() } : {}),
    };
  }

  private async persist(): Promise<void> {
    if (this.profiles && this.persisted) await saveState(this.profiles.dirOf(this.profileId), this.persisted);
  }

  /** One handler per command of the schema (protocol.ts ENGINE_COMMANDS); the compiler checks none is missing. */
  private readonly handlers: CommandHandlers = {
    start: (a) => this.start(a?.stateDir),
    setPrefs: (a) => this.setPrefs(a ?? {}),
    login: (a) => this.login(a ?? {}),
    logout: () => this.logout(),
    up: () => this.up(),
    down: () => this.down(),
    status: async () => this.snapshot(),
    ping: (a) => pingPeer(this.netmap, this.requireDataPath(), a),
    netcheck: () => netcheck(this.requireDataPath()),
    ...profileCommands(
      () => this.profileHost(),
      () => this.snapshot(),
    ),
    ...fileCommands({
      taildrop: () => this.services?.taildrop,
      running: () => this.state === 'Running' && !!this.dataPath,
      emit: (e) => this.events.emit(e),
    }),
  };

  async handle<C extends CommandName>(
    cmd: C,
    args: CommandMap[C]['args'],
    ctx: RequestContext = {},
  ): Promise<CommandMap[C]['result']> {
    if (!Object.hasOwn(this.handlers, cmd)) throw new EngineError('bad-request', `unknown command ${String(cmd)}`);
    if (cmd !== 'start' && !this.persisted) throw new EngineError('not-started', 'the engine has not been started');
    return this.handlers[cmd](args, ctx);
  }

  private async start(stateDir: string): Promise<StatusSnapshot> {
    if (typeof stateDir !== 'string' || stateDir === '') throw new EngineError('bad-request', 'start needs a stateDir');
    if (this.persisted) {
      if (stateDir !== this.stateDir) throw new EngineError('bad-request', `already started with ${this.stateDir}`);
      return this.snapshot();
    }
    let profiles: ProfileStore;
    try {
      profiles = await ProfileStore.open(stateDir);
    } catch (e) {
      throw new EngineError('permission-denied', `cannot use state directory ${stateDir}: ${(e as Error).message}`);
    }
    this.stateDir = stateDir;
    this.profiles = profiles;
    // Taildrop's inbox and the OS resolver's backup belong to the machine: they stay at the top of the state dir.
    if (this.o.dataPath) {
      const dp = this.o.dataPath;
      this.services = new NodeServices(stateDir, dp.tunName, this.events, () => this.conn.sendHostinfo(), dp);
      if (dp.networking !== 'userspace') await this.services.recover(); // userspace networking never touches the OS
    }
    await this.activate(profiles.current);
    return this.snapshot();
  }

  /** Makes a profile the active one: the running one stops as on `down`, this one starts as its prefs say. */
  private async activate(id: string): Promise<void> {
    const store = started(this.profiles);
    const dir = store.dirOf(id);
    const { keys, persisted } = await readProfile(dir);
    this.cancelLogin();
    this.conn.stop();
    await this.conn.closing;
    await store.setCurrent(id);
    this.netmap = new NetMap();
    this.authURL = undefined;
    this.profileId = id;
    this.keys = keys;
    this.persisted = persisted;
    this.registrar = new Registrar({
      stateDir: dir,
      keys,
      hostinfo: () => this.conn.hostinfo(),
      timeoutMs: this.o.controlTimeoutMs,
    });
    const { loggedIn, prefs } = persisted;
    if (loggedIn && prefs.controlURL && prefs.wantRunning) this.startMap();
    else this.setState(loggedIn && prefs.controlURL ? 'Stopped' : 'NeedsLogin');
    this.emitProfiles();
  }

  private profileHost(): ProfileHost {
    const engine = this;
    return {
      store: started(this.profiles),
      get activeId() {
        return engine.profileId;
      },
      get active() {
        return started(engine.persisted);
      },
      activate: (id) => this.activate(id),
      logoutActive: async () => void (await this.logout()),
      setControlURL: async (url) => void (await this.setPrefs({ controlURL: url })),
      controlTimeoutMs: this.o.controlTimeoutMs,
      events: this.events,
    };
  }

  /** Tells listeners (tray, window) the accounts changed. */
  private emitProfiles(): void {
    if (this.profiles) announceProfiles(this.profileHost());
  }

  private async setPrefs(p: Partial<Prefs>): Promise<Prefs> {
    const prefs = this.prefs;
    const forwardPorts = checkForwardPortsPref(p.forwardPorts); // checked first: a bad entry changes nothing
    if (p.adminURL !== undefined) prefs.adminURL = checkControlURL(p.adminURL) || undefined;
    if (p.controlURL !== undefined) {
      const url = checkControlURL(p.controlURL);
      if (url !== prefs.controlURL) {
        // Another server: this node's registration does not carry over.
        this.conn.stop();
        this.cancelLogin();
        this.persisted = { prefs: { ...prefs, controlURL: url, adminURL: undefined }, loggedIn: false };
        this.netmap = new NetMap();
        this.setState('NeedsLogin');
      }
    }
    const next = this.prefs;
    const routes = applyRoutePrefs(next, p); // checked first: a bad route changes nothing
    const hostnameChanged = typeof p.hostname === 'string' && p.hostname !== next.hostname;
    if (typeof p.hostname === 'string') next.hostname = p.hostname;
    const acceptDNSChanged = typeof p.acceptDNS === 'boolean' && p.acceptDNS !== next.acceptDNS;
    if (typeof p.acceptDNS === 'boolean') next.acceptDNS = p.acceptDNS;
    if (typeof p.autoConnect === 'boolean') next.autoConnect = p.autoConnect;
    if (typeof p.wantRunning === 'boolean') next.wantRunning = p.wantRunning;
    if (forwardPorts) next.forwardPorts = forwardPorts;
    await this.persist();
    if (routes.routing || forwardPorts) this.routesChanged(); // userspace networking forwards on each update
    // What we offer goes to control, and the filter's reach over our subnets follows it at once.
    if (routes.advertising && !routes.routing) this.conn.applyNetMap(this.netmap, () => this.state === 'Running');
    if (hostnameChanged || routes.advertising) this.conn.sendHostinfo();
    if (p.controlURL !== undefined || p.adminURL !== undefined) this.emitProfiles();
    if (acceptDNSChanged) {
      const running = this.state === 'Running' ? this.dataPath : undefined;
      await this.services?.syncOsDns(running, this.netmap, next.acceptDNS);
    }
    return copyPrefs(next);
  }

  /** The exit node or accept-routes changed: the data path and the OS routes follow; the warning too. */
  private routesChanged(): void {
    this.noteExitNode();
    if (this.state === 'Running') this.conn.applyNetMap(this.netmap, () => this.state === 'Running');
  }
  private noteExitNode(): void {
    const status = exitNodeStatus(peerSummaries(this.netmap), this.prefs);
    this.events.setHealth('exit-node', exitNodeHealth(status, this.netmap.self !== undefined));
  }

  private async login(o: LoginOptions): Promise<StatusSnapshot> {
    const { controlURL } = this.prefs;
    if (!controlURL) throw new EngineError('no-control-url', 'set a control server URL first');
    if (o.authKey !== undefined && (typeof o.authKey !== 'string' || o.authKey.trim() === '')) {
      throw new EngineError('bad-request', 'the auth key is empty');
    }
    const registrar = started(this.registrar);
    this.conn.stop();
    this.authURL = undefined;
    let outcome: Awaited<ReturnType<Registrar['login']>>;
    try {
      outcome = await registrar.login(controlURL, o.authKey?.trim());
    } catch (e) {
      const err = toEngineError(e, 'login failed');
      this.setState('NeedsLogin', err.message);
      throw err;
    }
    if (outcome.kind === 'needsMachineAuth') {
      this.setState('NeedsMachineAuth', 'the control server has not authorized this machine yet');
    } else if (outcome.kind === 'authorized') {
      await this.loggedIn(outcome.loginName);
    } else {
      this.authURL = outcome.authURL;
      this.setState('NeedsLogin', 'waiting for the login to be approved');
      this.events.emit({ type: 'event', event: 'browseToURL', url: outcome.authURL });
      void outcome.approval.then(async (r) => {
        if (r.kind === 'cancelled') return;
        this.authURL = r.kind === 'failed' ? r.authURL : undefined;
        if (r.kind === 'failed') this.setState('NeedsLogin', r.reason);
        else await this.loggedIn(r.loginName);
      });
    }
    return this.snapshot();
  }

  private cancelLogin(): void {
    this.registrar?.cancel();
  }

  private async loggedIn(loginName: string | undefined): Promise<void> {
    await started(this.registrar).settled();
    if (!this.persisted) return;
    this.persisted.loggedIn = true;
    if (loginName) this.persisted.loginName = loginName;
    await this.persist();
    this.emitProfiles();
    if (this.prefs.wantRunning) this.startMap();
    else this.setState('Stopped');
  }

  private startMap(): void {
    this.conn.stop();
    this.setState('Starting');
    this.conn.open();
  }

  private onMapMessage(m: Parameters<NetMap['apply']>[0]): void {
    if (!this.netmap.apply(m)) return;
    this.events.setHealth('control-unreachable', undefined);
    const self = this.netmap.self;
    if (!self) return; // nothing usable until the first full map
    if (keyExpired(self)) {
      this.conn.stop();
      void this.expired();
      return;
    }
    if (this.state !== 'Running') this.setState('Running');
    this.noteTailnet();
    this.noteExitNode();
    this.conn.applyNetMap(this.netmap, () => this.state === 'Running');
    this.events.emit({
      type: 'event',
      event: 'netmap',
      self: this.selfNode(),
      peers: peerSummaries(this.netmap),
      domain: this.netmap.domain || undefined,
    });
  }

  /** Keeps the tailnet's name (the MagicDNS suffix of our name) with the profile, to tell accounts apart. */
  private noteTailnet(): void {
    const tailnet = tailnetOf(this.netmap);
    if (!tailnet || !this.persisted || this.persisted.tailnet === tailnet) return;
    this.persisted.tailnet = tailnet;
    this.persist().then(
      () => this.emitProfiles(),
      (e: Error) => this.events.log('warn', `cannot save the account: ${e.message}`),
    );
  }

  private async expired(): Promise<void> {
    await started(this.registrar).rotateNodeKey();
    await this.loggedOut('node key expired: log in again');
  }

  private async loggedOut(reason: string | undefined): Promise<void> {
    this.conn.stop();
    this.netmap = new NetMap();
    if (this.persisted) this.persisted.loggedIn = false;
    await this.persist();
    this.setState('NeedsLogin', reason);
    this.emitProfiles();
  }

  private async logout(): Promise<StatusSnapshot> {
    this.cancelLogin();
    this.conn.stop();
    const { controlURL } = this.prefs;
    const registrar = started(this.registrar);
    if (controlURL && this.persisted?.loggedIn) {
      try {
        await registrar.logout(controlURL);
      } catch (e) {
        this.events.log('warn', `could not tell the control server about the logout: ${(e as Error).message}`);
      }
    }
    // The old node key is dead on the server; the next login starts with a fresh one.
    await registrar.freshNodeKey();
    this.prefs.wantRunning = false;
    this.authURL = undefined;
    await this.loggedOut(undefined);
    return this.snapshot();
  }

  private async up(): Promise<StatusSnapshot> {
    this.prefs.wantRunning = true;
    await this.persist();
    if (this.persisted?.loggedIn && this.prefs.controlURL) {
      if (!this.conn.mapping) this.startMap();
    } else {
      this.setState('NeedsLogin', this.reason);
    }
    return this.snapshot();
  }

  private async down(): Promise<StatusSnapshot> {
    this.prefs.wantRunning = false;
    await this.persist();
    this.cancelLogin();
    this.conn.stop();
    await this.conn.closed(); // the OS as it was (resolver, forwarding rules) before down answers
    // A pending interactive login is given up: its URL no longer leads anywhere.
    if (!this.persisted?.loggedIn) this.authURL = undefined;
    this.setState(this.persisted?.loggedIn ? 'Stopped' : 'NeedsLogin');
    return this.snapshot();
  }

  private requireDataPath(): DataPath {
    return runningDataPath(this.state === 'Running' ? this.dataPath : undefined);
  }

  async close(): Promise<void> {
    this.cancelLogin();
    this.conn.stop();
    await this.services?.dataPathClosed();
  }
}

export type { DataPathSettings, EngineOptions } from './core/engine-options.ts';

export function createEngine(opts: EngineOptions = {}): EngineApi {
  return new Engine(opts);
}
