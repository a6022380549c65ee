// The app's view of a TCP connection: a Node Duplex with net.Socket's common fields, so proxy code can pipe it
// to and from net.Sockets. Reads feed the receive window (unread bytes shrink it); writes wait for send-buffer room.
import { Duplex } from 'node:stream';
import { ReceiveStage } from './receive-stage.ts';
import type { TcpConnection } from './tcp-conn.ts';
import { type TcpApp, TcpError } from './tcp-types.ts';

export interface TcpSocketInfo {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export interface TcpInfo {
  state: string;
  rtoMs: number;
  srttMs: number;
  cwnd: number;
  ssthresh: number;
  sendWindow: number;
  mss: number;
  retransmits: number;
  fastRetransmits: number;
  timeouts: number;
  probes: number;
  segments: number;
}

export class TcpSocket extends Duplex {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily: 'IPv4' | 'IPv6';
  connecting: boolean;
  private conn: TcpConnection | undefined;
  private pendingWrite: ((err?: Error | null) => void) | undefined;
  /** What the connection could not take yet of the pending write (its callback is pendingWrite). */
  private pendingChunk: Uint8Array | undefined;
  private readPending = false;
  private pendingFinal: ((err?: Error | null) => void) | undefined;
  /** Received bytes copied out of their packets, pushed once per turn of the event loop. */
  private readonly stage = new ReceiveStage(
    (b) => this.push(b),
    () => !this.destroyed,
  );

  constructor(conn: TcpConnection, info: TcpSocketInfo, connecting: boolean, readBuffer: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: readBuffer });
    this.localAddress = info.localAddress;
    this.localPort = info.localPort;
    this.remoteAddress = info.remoteAddress;
    this.remotePort = info.remotePort;
    this.remoteFamily = info.remoteAddress.includes(':') ? 'IPv6' : 'IPv4';
    this.connecting = connecting;
    this.conn = conn;
    conn.app = this.hooks();
  }

  /** TCP state, for diagnostics and tests. */
  get tcpState(): string {
    return this.conn?.state ?? 'CLOSED';
  }

  /** Timer and window state of the connection (like Linux's TCP_INFO), for diagnostics and tests. */
  get tcpInfo(): TcpInfo | undefined {
    const c = this.conn;
    if (!c) return undefined;
    const s = c.snd;
    return {
      state: c.state,
      rtoMs: s.rtt.rto,
      srttMs: s.rtt.srtt,
      cwnd: s.cc.cwnd,
      ssthresh: s.cc.ssthresh,
      sendWindow: s.wnd,
      mss: s.mss,
      ...s.stats,
    };
  }

  private hooks(): TcpApp {
    return {
      onConnect: () => {
        this.connecting = false;
        this.emit('connect');
        this.emit('ready');
      },
      onData: (chunk) => {
        this.stage.add(chunk);
      },
      onEnd: () => {
        this.stage.flush();
        this.push(null);
      },
      onFinAcked: () => {
        const cb = this.pendingFinal;
        this.pendingFinal = undefined;
        cb?.();
      },
      onWritable: () => {
        const cb = this.pendingWrite;
        const rest = this.pendingChunk;
        this.pendingWrite = this.pendingChunk = undefined;
        if (cb && rest) this.offer(rest, cb);
        else cb?.();
      },
      onError: (err) => {
        this.conn = undefined;
        const w = this.pendingWrite;
        const f = this.pendingFinal;
        this.pendingWrite = this.pendingFinal = this.pendingChunk = undefined;
        w?.(err);
        f?.(err);
        this.destroy(err);
      },
      // Staged bytes are the app's already: the window and the stack's memory account count them.
      bufferedBytes: () => this.readableLength + this.stage.staged,
    };
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.offer(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), cb);
  }

  /** Gives the connection what fits of `data`; the rest waits for onWritable, and so does the callback. */
  private offer(data: Uint8Array, cb: (err?: Error | null) => void): void {
    const conn = this.conn;
    if (!conn) {
      cb(new TcpError('EPIPE', 'the connection is closed'));
      return;
    }
    const taken = conn.accept(data);
    if (taken === data.length) {
      cb();
      return;
    }
    this.pendingChunk = data.subarray(taken);
    this.pendingWrite = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    const conn = this.conn;
    if (!conn) {
      cb();
      return;
    }
    this.pendingFinal = cb;
    conn.shutdown();
    if (conn.snd.finAcked) this.hooks().onFinAcked();
  }

  override _read(): void {
    // Readable calls _read before it takes the chunk being read out of its buffer: look once it has.
    if (this.readPending) return;
    this.readPending = true;
    queueMicrotask(() => {
      this.readPending = false;
      this.conn?.onAppRead();
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const conn = this.conn;
    this.conn = undefined;
    // Staged bytes are unread ones: detach sees them (and resets rather than closes) before they are dropped.
    conn?.detach();
    this.stage.clear();
    cb(err);
  }

  /** Sends keep-alive probes after `initialDelayMs` of silence (net.Socket's signature). */
  setKeepAlive(enable = false, initialDelayMs = 0): this {
    this.conn?.setKeepAlive(enable ? initialDelayMs || 7_200_000 : 0);
    return this;
  }

  /** No Nagle here: segments go out as soon as the windows allow. */
  setNoDelay(_noDelay = true): this {
    return this;
  }

  /** Sends RST instead of FIN (net.Socket.resetAndDestroy). */
  resetAndDestroy(): this {
    this.conn?.abort();
    this.conn = undefined;
    return this.destroy();
  }
}
