// Keeps one map stream open for as long as the node should be connected: reconnects with capped
// exponential backoff and jitter when the server restarts or the connection drops, and restarts a
// stream that has been silent past the keep-alive watchdog. Never a hot loop: every retry waits.
import { ControlError } from './dial.ts';
import { ControlSession, HttpStatusError } from './session.ts';
import type { MapRequest, MapResponse } from './tailcfg.ts';

export interface MapLoopOptions {
  serverUrl: string;
  machinePrivate: Uint8Array;
  request: () => MapRequest;
  onMessage: (m: MapResponse) => void;
  /** Called with the error each time the stream is lost (undefined = it ended cleanly) and the delay before retrying. */
  onDisconnect: (err: Error | undefined, retryInMs: number) => void;
  /** A fatal answer (the server no longer knows this node): the loop stops. */
  onFatal: (err: HttpStatusError) => void;
  watchdogMs?: number;
  /** Per-connection timeout for dialing control. */
  connectTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class MapLoop {
  private stopped = false;
  private session: ControlSession | undefined;
  private cancelStream: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private failures = 0;

  constructor(private readonly o: MapLoopOptions) {
    void this.run(); // never rejects: every failure is reported through onDisconnect / onFatal
  }

  get currentSession(): ControlSession | undefined {
    return this.session;
  }

  stop(): void {
    this.stopped = true;
    this.cancelStream?.();
    this.session?.close();
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
  }

  private backoff(): number {
    const min = this.o.minBackoffMs ?? 1000;
    const max = this.o.maxBackoffMs ?? 30_000;
    const base = Math.min(max, min * 2 ** Math.min(this.failures, 16));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }

  private async run(): Promise<void> {
    const watchdogMs = this.o.watchdogMs ?? 120_000;
    for (let attempt = 0; !this.stopped && attempt < Number.MAX_SAFE_INTEGER; attempt++) {
      let error: Error | undefined;
      try {
        if (!this.session || this.session.closed) {
          this.session = await ControlSession.open(this.o.serverUrl, this.o.machinePrivate, this.o.connectTimeoutMs);
        }
        if (this.stopped) break;
        const s = this.session;
        let watchdog: NodeJS.Timeout | undefined;
        const stream = s.streamMap(this.o.request(), (m) => {
          this.failures = 0;
          if (watchdog) watchdog.refresh();
          this.o.onMessage(m);
        });
        this.cancelStream = stream.cancel;
        watchdog = setTimeout(() => {
          error = new ControlError('timeout', `no message from control for ${watchdogMs / 1000} s`);
          stream.cancel();
          s.close();
        }, watchdogMs);
        try {
          await stream.done;
        } finally {
          clearTimeout(watchdog);
          this.cancelStream = undefined;
        }
      } catch (e) {
        error = e instanceof Error ? e : new Error(String(e));
      }
      if (this.stopped) break;
      if (error instanceof HttpStatusError && [401, 403, 404].includes(error.status)) {
        this.session?.close();
        this.o.onFatal(error);
        return;
      }
      this.session?.close();
      this.session = undefined;
      const delay = this.backoff();
      this.failures++;
      this.o.onDisconnect(error, delay);
      await this.sleep(delay);
    }
  }
}
