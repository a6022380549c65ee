// One DERP connection (docs/protocol/datapath.md §1.2–1.6): dial, HTTP upgrade, ServerKey → ClientInfo → ServerInfo, then
// packets both ways, pings answered, a read watchdog. No reconnecting: a caller loops over connect() and
// close(). Every wait is bounded; every byte from the server goes through FrameParser, whose errors end the
// connection with a DerpError instead of an exception.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { keyToText } from '../crypto/key-text.ts';
import { publicKeyOf } from '../wg/crypto.ts';
import { type DerpNode, type DerpTarget, dialTCP, resolveTarget, startTLS } from './dial.ts';
import { DerpError } from './errors.ts';
import { buildNotePreferred, buildPing, buildPong, buildSendPacket, type DerpFrame, FrameParser } from './frames.ts';
import { clientInfoFrame, type DerpServerInfo, openServerInfo, UpgradeReader, upgradeRequest } from './handshake.ts';

export type { DerpNode } from './dial.ts';
export { DerpError, type DerpErrorKind } from './errors.ts';
export type { DerpServerInfo } from './handshake.ts';

export const CONNECT_TIMEOUT_MS = 10_000;
/** Twice the server's 60 s keepalive: no byte for this long and the connection is dead. */
export const READ_TIMEOUT_MS = 120_000;
export const PING_TIMEOUT_MS = 5_000;
/** Bytes queued in the socket beyond which send() drops instead of buffering without bound. */
const MAX_WRITE_BUFFER = 4 << 20;

export interface DerpConnectOptions {
  /** http://host:port/derp or https://host/derp; or give node. */
  url?: string;
  node?: DerpNode;
  /** This node's private node key (32 bytes): the DERP identity is its public half. */
  privateKey: Uint8Array;
  /** 64 hex digits; only for mesh peers between DERP servers. */
  meshKey?: string;
  /** With node: TLS (default) or plain HTTP. With url: must agree with the scheme if given. */
  useTLS?: boolean;
  /** Bound on dial + TLS + upgrade + handshake; default 10 s. */
  timeoutMs?: number;
  /** Watchdog; default READ_TIMEOUT_MS. */
  readTimeoutMs?: number;
  /** Answer server pings (default true); announced as CanAckPings. */
  canAckPings?: boolean;
}

type Stage = 'http' | 'serverKey' | 'serverInfo' | 'open' | 'closed';
type Waiter = { resolve: () => void; reject: (e: DerpError) => void };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export class DerpClient {
  /** This client's public node key. */
  readonly publicKey: Uint8Array;
  /** Packets not sent: connection not open, socket backlog over 4 MiB, or over the server's token bucket. */
  droppedSends = 0;
  /** RecvPackets that arrived with no onPacket handler. */
  droppedReceives = 0;
  private stage: Stage = 'http';
  private readonly upgrade = new UpgradeReader();
  private readonly parser = new FrameParser();
  private serverKey: Uint8Array = new Uint8Array(0);
  private info: DerpServerInfo = { version: 0, tokenBucketBytesPerSecond: 0, tokenBucketBytesBurst: 0 };
  private ready: Waiter | undefined;
  private error: DerpError | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private closedLocally = false;
  private bucket: { tokens: number; at: number } | undefined;
  private readonly pings = new Map<string, Waiter>();
  private packetCb: ((src: Uint8Array, packet: Uint8Array) => void) | undefined;
  private peerGoneCb: ((peer: Uint8Array, reason: number) => void) | undefined;
  private healthCb: ((problem: string) => void) | undefined;
  private restartingCb: ((reconnectInMs: number, tryForMs: number) => void) | undefined;
  private closeCb: ((err: DerpError) => void) | undefined;

  private constructor(
    private readonly sock: Socket,
    private readonly o: DerpConnectOptions,
    private readonly target: DerpTarget,
  ) {
    this.publicKey = publicKeyOf(o.privateKey);
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', (e) => {
      const why = this.stage === 'open' ? 'DERP connection failed' : this.closedWhy();
      this.fail(new DerpError('closed', `${why}: ${e.message}`, { cause: e }));
    });
    sock.on('close', () => this.fail(new DerpError('closed', this.closedWhy())));
  }

  /** Connects and completes the handshake (ServerInfo received), or rejects with a DerpError. */
  static async connect(o: DerpConnectOptions): Promise<DerpClient> {
    if (!(o.privateKey instanceof Uint8Array) || o.privateKey.length !== 32) {
      throw new TypeError('DerpClient.connect: privateKey must be 32 bytes');
    }
    if (o.meshKey !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.meshKey)) throw new TypeError('meshKey: 64 hex digits');
    const target = resolveTarget(o);
    const timeoutMs = o.timeoutMs ?? CONNECT_TIMEOUT_MS;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    let sock: Socket | undefined;
    try {
      sock = await dialTCP(target, ac.signal);
      if (target.tls) sock = await startTLS(sock, target, ac.signal);
      const client = new DerpClient(sock, o, target);
      ac.signal.addEventListener('abort', () => {
        const at =
          client.stage === 'http' ? 'the HTTP 101 answer' : client.stage === 'serverKey' ? 'ServerKey' : 'ServerInfo';
        client.fail(new DerpError('timeout', `DERP connect timed out after ${timeoutMs} ms waiting for ${at}`));
      });
      await client.handshake();
      return client;
    } catch (e) {
      sock?.destroy();
      throw e instanceof DerpError ? e : new DerpError('protocol', `DERP connect failed: ${String(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  get serverPublicKey(): Uint8Array {
    return this.serverKey;
  }

  get serverInfo(): DerpServerInfo {
    return this.info;
  }

  get closed(): boolean {
    return this.stage === 'closed';
  }

  /** Why the connection ended (undefined while open). */
  get closeError(): DerpError | undefined {
    return this.error;
  }

  /** src is the sender's node key. Packets may alias the read buffer: copy them to keep them. */
  onPacket(cb: (src: Uint8Array, packet: Uint8Array) => void): void {
    this.packetCb = cb;
  }

  /** The peer is no longer reachable through this server (reason 0 disconnected, 1 not here). */
  onPeerGone(cb: (peer: Uint8Array, reason: number) => void): void {
    this.peerGoneCb = cb;
  }

  /** Server health text; '' means healthy again. */
  onHealth(cb: (problem: string) => void): void {
    this.healthCb = cb;
  }

  /** The server announces a restart: reconnect after reconnectInMs, keep trying for tryForMs. */
  onRestarting(cb: (reconnectInMs: number, tryForMs: number) => void): void {
    this.restartingCb = cb;
  }

  /** Called once when the connection ends for any reason other than close(); at once if it already has. */
  onClose(cb: (err: DerpError) => void): void {
    this.closeCb = cb;
    const err = this.error;
    if (err && !this.closedLocally) queueMicrotask(() => cb(err));
  }

  /** Queues a packet for dst; false (and counted) when dropped. DerpFrameError: over 64 KiB or a bad key. */
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    const frame = buildSendPacket(dst, packet);
    if (this.stage !== 'open' || this.sock.writableLength > MAX_WRITE_BUFFER || !this.takeTokens(frame.length)) {
      this.droppedSends++;
      return false;
    }
    this.write(frame);
    return true;
  }

  /** Tells the server whether this is our home DERP (stats only). */
  notePreferred(preferred: boolean): void {
    if (this.stage === 'open') this.write(buildNotePreferred(preferred));
  }

  /** Pings the server; resolves with the round-trip time in ms. */
  ping(timeoutMs = PING_TIMEOUT_MS): Promise<number> {
    if (this.stage !== 'open') return Promise.reject(this.error ?? new DerpError('closed', 'DERP client not open'));
    const data = new Uint8Array(randomBytes(8));
    const key = hex(data);
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(key);
        reject(new DerpError('timeout', `no pong from the DERP server within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pings.set(key, {
        resolve: () => {
          clearTimeout(timer);
          resolve(performance.now() - t0);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.write(buildPing(data));
    });
  }

  /** Ends the connection. onClose is not called; pending pings reject. Idempotent. */
  close(): void {
    if (this.stage !== 'closed') this.closedLocally = true;
    this.fail(new DerpError('closed', 'DERP client closed locally'));
  }

  // ---- internals ----

  /** Sends the upgrade request; settles when ServerInfo is in, or on the first failure. */
  private handshake(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.ready = { resolve, reject };
      this.sock.write(upgradeRequest(this.target.path, this.target.hostHeader));
    });
  }

  private closedWhy(): string {
    if (this.stage === 'http') return 'DERP server closed the connection before answering the upgrade';
    if (this.stage === 'serverKey') return 'DERP server closed the connection before sending its key';
    if (this.stage !== 'serverInfo') return 'DERP server closed the connection';
    return (
      `DERP server closed the connection after ClientInfo without sending ServerInfo: it did not admit ` +
      `${keyToText('nodekey', this.publicKey)} (a server that verifies clients, e.g. Headscale with ` +
      `verify_clients, admits only node keys of registered nodes)`
    );
  }

  private onData(d: Buffer): void {
    if (this.stage === 'closed') return;
    this.watchdog?.refresh();
    let chunk: Uint8Array | null = d;
    if (this.stage === 'http') {
      try {
        chunk = this.upgrade.push(d);
      } catch (e) {
        this.fail(e as DerpError);
        return;
      }
      if (!chunk) return;
      this.stage = 'serverKey';
    }
    this.parser.push(chunk);
    this.drain();
  }

  private drain(): void {
    while (this.stage !== 'closed') {
      let f: DerpFrame | null;
      try {
        f = this.parser.next();
      } catch (e) {
        this.fail(new DerpError('protocol', `bad frame from the DERP server: ${(e as Error).message}`));
        return;
      }
      if (!f) return;
      if (this.stage === 'open') this.onFrame(f);
      else if (this.onHandshakeFrame(f)) {
        // Let connect()'s caller register handlers before frames that came in the same read are delivered.
        setImmediate(() => this.drain());
        return;
      }
    }
  }

  /** ServerKey → send ClientInfo; ServerInfo → open (returns true). */
  private onHandshakeFrame(f: DerpFrame): boolean {
    if (this.stage === 'serverKey') {
      if (f.type !== 'serverKey') {
        this.fail(new DerpError('protocol', `expected ServerKey from the DERP server, got ${f.type}`));
      } else if (this.upgrade.serverKeyHex && this.upgrade.serverKeyHex !== hex(f.key)) {
        this.fail(new DerpError('protocol', 'ServerKey frame disagrees with the Derp-Public-Key header'));
      } else {
        this.serverKey = f.key;
        this.stage = 'serverInfo';
        const o = this.o;
        this.write(
          clientInfoFrame(this.publicKey, o.privateKey, f.key, { meshKey: o.meshKey, canAckPings: o.canAckPings }),
        );
      }
      return false;
    }
    if (f.type === 'ping') this.answerPing(f.data);
    if (f.type !== 'serverInfo') return false; // nothing else is expected before ServerInfo
    try {
      this.info = openServerInfo(f.sealed, this.serverKey, this.o.privateKey);
    } catch (e) {
      this.fail(e as DerpError);
      return false;
    }
    if (this.info.tokenBucketBytesPerSecond && this.info.tokenBucketBytesBurst) {
      this.bucket = { tokens: this.info.tokenBucketBytesBurst, at: performance.now() };
    }
    this.stage = 'open';
    const ms = this.o.readTimeoutMs ?? READ_TIMEOUT_MS;
    this.watchdog = setTimeout(() => {
      this.fail(new DerpError('timeout', `nothing from the DERP server in ${ms} ms (keepalives stopped)`));
    }, ms);
    this.watchdog.unref();
    this.ready?.resolve();
    this.ready = undefined;
    return true;
  }

  private onFrame(f: DerpFrame): void {
    switch (f.type) {
      case 'recvPacket':
        if (this.packetCb) this.packetCb(f.src, f.packet);
        else this.droppedReceives++;
        break;
      case 'ping':
        this.answerPing(f.data);
        break;
      case 'pong':
        this.pings.get(hex(f.data))?.resolve();
        this.pings.delete(hex(f.data));
        break;
      case 'peerGone':
        this.peerGoneCb?.(f.peer, f.reason);
        break;
      case 'health':
        this.healthCb?.(f.problem);
        break;
      case 'restarting':
        this.restartingCb?.(f.reconnectInMs, f.tryForMs);
        break;
      default: // keepAlive only feeds the watchdog; server-bound and repeated handshake frames are ignored
    }
  }

  private answerPing(data: Uint8Array): void {
    if (this.o.canAckPings !== false) this.write(buildPong(data));
  }

  private takeTokens(n: number): boolean {
    const b = this.bucket;
    if (!b) return true;
    const now = performance.now();
    const { tokenBucketBytesPerSecond: rate, tokenBucketBytesBurst: burst } = this.info;
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }

  /** One write per frame, as the official client flushes per packet: the server reads it as it comes. */
  private write(b: Uint8Array): void {
    if (!this.sock.destroyed) this.sock.write(b);
  }

  private fail(err: DerpError): void {
    if (this.stage === 'closed') return;
    const wasOpen = this.stage === 'open';
    this.stage = 'closed';
    this.error = err;
    clearTimeout(this.watchdog);
    this.sock.destroy();
    for (const p of this.pings.values()) p.reject(err);
    this.pings.clear();
    this.ready?.reject(err);
    this.ready = undefined;
    if (wasOpen && !this.closedLocally) this.closeCb?.(err);
  }
}
