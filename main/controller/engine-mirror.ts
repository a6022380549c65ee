// The app's copy of the engine's state: the link to it (worker or daemon), the last status snapshot kept fresh
// from engine events and a slow poll (for paths, handshakes and bytes), and a new link when the old one is lost
// or was never there. The controller decides what the changes mean for the user.
import { ApiError } from '../../preload/api.ts';
import type { EngineClient } from '../engine/ipc/rpc.ts';
import type { EngineEvent, ProfileList, StatusSnapshot } from '../engine/protocol.ts';
import type { EngineLink } from './engine-link.ts';

/** Status polled this often while an engine is linked. */
const POLL_INTERVAL_MS = 2_000;
const MAX_RETRY_DELAY_MS = 10_000;

export interface EngineMirrorOptions {
  /** Opens a new link after the current one is lost (absent = stay without an engine). */
  reopen?: () => Promise<EngineLink>;
  /** Something the window shows changed. */
  changed: () => void;
  /** Every engine event, after the mirror has applied it; previous = the state before a 'state' event. */
  onEvent: (e: EngineEvent, previous: StatusSnapshot | undefined) => void;
  /** A link reached an engine (at start or again after a loss). */
  onAttached: () => Promise<void>;
  /** Each fresh status. */
  onStatus?: (s: StatusSnapshot) => void;
}

export class EngineMirror {
  #link: EngineLink;
  #status: StatusSnapshot | undefined;
  #profiles: ProfileList | undefined;
  #offLink: (() => void)[] = [];
  #refreshing: Promise<void> | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    link: EngineLink,
    private readonly o: EngineMirrorOptions,
  ) {
    this.#link = link;
  }

  get link(): EngineLink {
    return this.#link;
  }

  get status(): StatusSnapshot | undefined {
    return this.#status;
  }

  /** The engine's accounts, kept fresh by its 'profiles' events (undefined from an engine without them). */
  get profiles(): ProfileList | undefined {
    return this.#profiles;
  }

  /** Attaches the first link (retrying when it reached no engine) and starts the poll. */
  async start(): Promise<void> {
    await this.#attach(this.#link);
    if (this.#link.kind === 'none') this.#retry();
    this.#pollTimer = setInterval(() => void this.refresh(), POLL_INTERVAL_MS);
    this.#pollTimer.unref?.();
  }

  /** The engine's client; a typed 'no-engine' error when there is none. */
  client(): EngineClient {
    const c = this.#link.client;
    if (!c || c.closed) throw new ApiError('no-engine', this.#link.problem ?? 'no engine is running');
    return c;
  }

  /** The client when there is one, for background work that just skips without an engine. */
  maybeClient(): EngineClient | undefined {
    const c = this.#link.client;
    return c && !c.closed ? c : undefined;
  }

  /** Takes a status the engine returned from a command. */
  setStatus(s: StatusSnapshot): void {
    this.#status = s;
    this.o.changed();
  }

  /** One status request at a time; a refresh asked for meanwhile joins the running one. */
  refresh(): Promise<void> {
    const client = this.maybeClient();
    if (!client) return Promise.resolve();
    this.#refreshing ??= client
      .request('status', {}, { timeoutMs: 10_000 })
      .then((s) => {
        this.#status = s;
        this.o.onStatus?.(s);
      })
      .catch(() => {})
      .finally(() => {
        this.#refreshing = undefined;
        this.o.changed();
      });
    return this.#refreshing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pollTimer);
    for (const off of this.#offLink) off();
    await this.#link.close();
  }

  /** Closes the link and opens a new one: the app's own engine restarts and reads its settings again. While it
   *  restarts the window shows no engine, with why. */
  async restart(why: string): Promise<void> {
    const reopen = this.o.reopen;
    if (!reopen || this.#closed) return;
    for (const off of this.#offLink) off();
    this.#offLink = [];
    const old = this.#link;
    this.#link = { kind: 'none', problem: why, where: old.where, close: async () => {} };
    this.#status = undefined;
    this.o.changed();
    await old.close();
    const link = await reopen().catch((e: Error) => ({ kind: 'none', problem: e.message }) as EngineLink);
    if (this.#closed) return void (await link.close?.());
    if (link.kind !== 'none') return this.#attach(link);
    this.#link = link;
    this.o.changed();
    this.#retry();
  }

  async #attach(link: EngineLink): Promise<void> {
    for (const off of this.#offLink) off();
    this.#offLink = [];
    this.#link = link;
    this.#status = undefined;
    this.#profiles = undefined;
    const client = link.client;
    if (client) {
      this.#offLink.push(client.on((e) => this.#apply(e)));
      this.#offLink.push(client.onClose((error) => this.#lost(error)));
      await this.refresh();
      this.#profiles = await client.request('listProfiles', {}, { timeoutMs: 10_000 }).catch(() => undefined);
      await this.o.onAttached();
    }
    this.o.changed();
  }

  #apply(e: EngineEvent): void {
    const previous = this.#status ? { ...this.#status } : undefined;
    if (e.event === 'state') {
      if (this.#status) Object.assign(this.#status, { state: e.state, reason: e.reason });
      void this.refresh();
    } else if (e.event === 'browseToURL') {
      if (this.#status) this.#status.authURL = e.url;
      this.o.changed();
    } else if (e.event === 'netmap' || e.event === 'health') {
      void this.refresh();
    } else if (e.event === 'profiles') {
      this.#profiles = e.profiles;
      void this.refresh();
    }
    this.o.onEvent(e, previous);
  }

  #lost(error?: Error): void {
    if (this.#closed) return;
    const why = error ? error.message : 'the engine closed the connection';
    this.#link = {
      kind: 'none',
      problem: `Lost the engine (${why}); reconnecting…`,
      where: this.#link.where,
      close: async () => {},
    };
    this.#status = undefined;
    this.#profiles = undefined;
    this.o.changed();
    this.#retry();
  }

  /** Opens links again (backing off to 10 s) until one reaches an engine or the mirror closes. */
  #retry(): void {
    const reopen = this.o.reopen;
    if (!reopen) return;
    let delay = 1000;
    const again = async () => {
      if (this.#closed) return;
      const link = await reopen().catch((e: Error) => ({ kind: 'none', problem: e.message }) as EngineLink);
      if (this.#closed) return void (await link.close?.());
      if (link.kind !== 'none') return this.#attach(link);
      this.#link = { ...link, problem: `${link.problem ?? 'No engine.'} Retrying…` };
      this.o.changed();
      delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
      setTimeout(() => void again(), delay).unref?.();
    };
    setTimeout(() => void again(), delay).unref?.();
  }
}
