// The core of a TCP connection: its state and halves, the segments it emits, what the app can ask of it, and its
// deadlines. TcpConnection (tcp-conn.ts) adds the handshake, segment processing and timer handling on top.
import type { TimerOwner } from './clock.ts';
import { KeepAlive } from './keepalive.ts';
import type { MemoryWaiter } from './memory.ts';
import { buildTcpPacket, type PayloadSource, type SegmentOut, TCP_FLAGS, type TcpOptions } from './segment.ts';
import { TcpReceiver } from './tcp-receiver.ts';
import { type SegmentSink, TcpSender } from './tcp-sender.ts';
import type { TcpApp, TcpError, TcpHost, TcpState } from './tcp-types.ts';

const { ACK, RST } = TCP_FLAGS;

const NO_ADDR = new Uint8Array(0);
const NO_SOURCE: PayloadSource = { copyTo() {} };
/**
 * The one description of the segment being built: every emit fills all of it and buildTcpPacket reads it before it
 * returns, so no segment allocates its header fields (an upload made ~160 bytes of garbage a segment here).
 */
const outData: { from: PayloadSource; offset: number; length: number } = { from: NO_SOURCE, offset: 0, length: 0 };
const segOut: SegmentOut = {
  src: NO_ADDR,
  dst: NO_ADDR,
  srcPort: 0,
  dstPort: 0,
  seq: 0,
  ack: 0,
  flags: 0,
  window: 0,
  options: undefined,
  payload: undefined,
  data: undefined,
  ttl: 64,
};

/** The earlier of two deadlines, where 0 means none. */
const earliest = (a: number, b: number): number => (a === 0 ? b : b === 0 || a < b ? a : b);

export interface Endpoints {
  localAddr: Uint8Array;
  localPort: number;
  remoteAddr: Uint8Array;
  remotePort: number;
}

/**
 * An ACK due at the end of the turn: every second full segment is due one, but the data path hands packets over in
 * batches, several per wake-up (up to 256 datagrams, 64 a call), and one ACK once the turn is through covers them
 * all, as gVisor's one ACK per drained queue does. One per call (a microtask) made ~14 ACKs a MB where tailscaled
 * sends ~5, and the server paid for each.
 */
export const TURN_ACK = 1;
/** A short last segment held by take() (see there), sent at the end of the turn. */
export const TURN_TAIL = 2;

export abstract class ConnectionCore implements TimerOwner, SegmentSink, MemoryWaiter {
  state: TcpState;
  readonly snd: TcpSender;
  readonly rcv: TcpReceiver;
  protected closeAt = 0;
  protected synRetries = 0;
  protected synSentAt = 0;
  protected readonly ka: KeepAlive;
  protected queuedAt = 0;
  /** What waits for the end of this turn of the event loop (TURN_* bits; one setImmediate for all of it). */
  private turnEndDue = 0;
  /** Both sides offered SACK: our ACKs carry blocks for out-of-order data. */
  protected sackOk = false;
  app: TcpApp | undefined;
  /** The app let go (destroy after end): finish closing, then vanish. */
  orphan = false;
  readonly ourMss: number;
  /** Bytes this connection last reported to the stack's memory account. */
  private held = 0;

  constructor(
    protected readonly host: TcpHost,
    readonly key: string,
    readonly ep: Endpoints,
    iss: number,
    passive: boolean,
  ) {
    const cfg = host.config;
    this.ourMss = cfg.mtu - (ep.localAddr.length === 4 ? 40 : 60);
    this.rcv = new TcpReceiver(cfg.rcvBuf, host.reassemblyBudget);
    this.snd = new TcpSender(this, () => host.now(), this.ourMss, cfg.minRtoMs);
    this.snd.start(iss);
    this.state = passive ? 'SYN_RECEIVED' : 'SYN_SENT';
    this.ka = new KeepAlive(host.now());
  }

  /** The window field we send now (scaled). */
  protected windowField(): number {
    const mem = this.host.memory;
    const app = this.app?.bufferedBytes() ?? 0;
    // The stack's room, but never less than keeps this connection's floor open (see receiveFloor).
    const floorRoom = this.receiveFloor - this.rcv.rq.bytes - app - this.rcv.window;
    const w = this.rcv.windowField(app, this.snd.mss, Math.max(mem.room, floorRoom));
    // A window held shut by the stack's memory cap: reopen it when room returns.
    if (mem.room < this.rcv.bufSize) mem.wait(this);
    return w;
  }

  /**
   * Received bytes a connection may always hold, whatever the stack's cap says (like Linux's tcp_rmem[0]): without
   * it two stacks whose caps are full of send buffers would each refuse the data that frees the other.
   */
  protected get receiveFloor(): number {
    return 4 * this.snd.mss;
  }

  /** Brings the stack's memory account up to date with what this connection holds now. */
  protected account(): void {
    const now = this.state === 'CLOSED' ? 0 : this.bufferedBytes + (this.app?.bufferedBytes() ?? 0);
    if (now !== this.held) {
      this.host.memory.change(now - this.held);
      this.held = now;
    }
  }

  /** The stack's memory cap has room again: reopen our window and take more of the app's writes. */
  onMemoryRoom(): void {
    if (this.state === 'CLOSED') return;
    if (this.state !== 'SYN_SENT' && !this.rcv.finSeen && this.rcv.window < this.rcv.bufSize / 2) this.sendAck();
    this.app?.onWritable();
    this.account();
    this.armTimers();
  }

  protected enterTimeWait(): void {
    this.state = 'TIME_WAIT';
    this.snd.rtoAt = 0;
    this.snd.persistAt = 0;
    this.ka.at = 0;
    this.closeAt = this.host.now() + this.host.config.timeWaitMs;
  }

  // --- output ------------------------------------------------------------------------------------------------

  sendSegment(seq: number, flags: number, payload?: Uint8Array): void {
    this.emitSegment(seq, flags, this.windowField(), undefined, payload);
  }

  sendData(seq: number, flags: number, offset: number, length: number): void {
    this.emitSegment(seq, flags, this.windowField(), undefined, undefined, offset, length);
  }

  protected emitSegment(
    seq: number,
    flags: number,
    window: number,
    options?: TcpOptions,
    payload?: Uint8Array,
    /** Instead of payload: this many bytes of the send buffer, from dataOffset, copied into the packet. */
    dataOffset = 0,
    dataLength = -1,
  ): void {
    if (flags & ACK) {
      this.rcv.unacked = 0;
      this.rcv.ackAt = 0;
    }
    const ep = this.ep;
    let opts = options;
    if (!opts && flags & ACK && this.sackOk && this.rcv.rq.segments > 0) opts = { sack: this.rcv.rq.sackBlocks(4) };
    segOut.src = ep.localAddr;
    segOut.dst = ep.remoteAddr;
    segOut.srcPort = ep.localPort;
    segOut.dstPort = ep.remotePort;
    segOut.seq = seq;
    segOut.ack = flags & ACK ? this.rcv.nxt : 0;
    segOut.flags = flags;
    segOut.window = window;
    segOut.options = opts;
    segOut.payload = payload;
    segOut.data = undefined;
    if (dataLength >= 0) {
      outData.from = this.snd.buf;
      outData.offset = dataOffset;
      outData.length = dataLength;
      segOut.data = outData;
    }
    const packet = buildTcpPacket(segOut, this.host.packetBytes);
    // nothing of this segment stays reachable from the shared description
    segOut.payload = undefined;
    segOut.options = undefined;
    outData.from = NO_SOURCE;
    this.host.emit(packet);
  }

  sendAck(): void {
    if (this.state === 'SYN_SENT' || this.state === 'CLOSED') return;
    // SND.MAX, not SND.NXT: after a timeout nxt is pulled back, and a pure ACK from behind the peer's RCV.NXT
    // would be unacceptable to it (and its ACK information lost).
    this.sendSegment(this.snd.max, ACK);
  }

  protected sendReset(seq: number): void {
    this.emitSegment(seq, RST, 0);
  }

  // --- app calls ---------------------------------------------------------------------------------------------

  /** Queues all of `data`, past the buffers' bounds if need be; false when they are full (wait for onWritable). */
  write(data: Uint8Array): boolean {
    this.take(data);
    return this.snd.buf.length < this.host.config.sndBuf && this.host.memory.room > 0;
  }

  /**
   * Queues as much of `data` as the send buffer and the stack's memory cap allow (no copy); returns how many
   * bytes were taken. Fewer than all: wait for onWritable and offer the rest.
   */
  accept(data: Uint8Array): number {
    const mem = this.host.memory;
    const own = this.host.config.sndBuf - this.snd.buf.length;
    const n = Math.max(0, Math.min(data.length, own, mem.room));
    // Held back by the stack rather than by our own buffer: no ACK of ours may come to free room, so ask to be woken.
    if (n < data.length && mem.room < own) mem.wait(this);
    if (n > 0) this.take(n === data.length ? data : data.subarray(0, n));
    return n;
  }

  private take(data: Uint8Array): void {
    this.snd.buf.append(data);
    // A proxy writes what one read of its socket gave (64 KiB from Node): sent at once, each write's short last
    // segment would cut the GSO trains and add a packet; held to the turn's end, the next write fills it.
    if (this.state !== 'SYN_SENT' && this.state !== 'SYN_RECEIVED' && this.snd.output(true)) this.atTurnEnd(TURN_TAIL);
    this.account();
    this.armTimers();
  }

  /** Queues work for the end of this turn of the event loop, once however often it is asked for. */
  protected atTurnEnd(what: number): void {
    if (this.turnEndDue === 0) setImmediate(this.turnEnd);
    this.turnEndDue |= what;
  }

  private readonly turnEnd = (): void => {
    const due = this.turnEndDue;
    this.turnEndDue = 0;
    if (this.state === 'CLOSED') return;
    if (due & TURN_TAIL) this.snd.output(); // a data segment carries the ACK too
    if (due & TURN_ACK && this.rcv.unacked > 0) this.sendAck();
    this.armTimers();
  };

  /** The app ended its side: queue our FIN. */
  shutdown(): void {
    if (this.snd.finQueued) return;
    this.snd.finQueued = true;
    if (this.state === 'ESTABLISHED') this.state = 'FIN_WAIT_1';
    else if (this.state === 'CLOSE_WAIT') this.state = 'LAST_ACK';
    else return;
    this.snd.output();
    this.armTimers();
  }

  /** The app read some data: the window may have opened enough to tell the peer. */
  onAppRead(): void {
    if (this.state === 'CLOSED' || this.state === 'SYN_SENT' || this.rcv.finSeen) return;
    if (this.rcv.wantsWindowUpdate(this.app?.bufferedBytes() ?? 0, this.snd.mss)) {
      this.sendAck();
      this.armTimers();
    }
    this.account();
  }

  setKeepAlive(idleMs: number): void {
    this.ka.enable(idleMs, this.host.now());
    this.armTimers();
  }

  /** The app is gone. Graceful when it ended first and read everything; otherwise the peer gets a reset. */
  detach(): void {
    const app = this.app;
    this.app = undefined;
    if (this.state === 'CLOSED' || this.state === 'TIME_WAIT') return;
    const graceful = this.snd.finQueued && (app?.bufferedBytes() ?? 0) === 0;
    if (graceful) {
      this.orphan = true;
      if (this.state === 'FIN_WAIT_2') this.closeAt = this.host.now() + this.host.config.finWait2Ms;
      this.account();
      this.armTimers();
      return;
    }
    this.abort();
  }

  /** Sends RST and forgets the connection (no app notification). */
  abort(): void {
    if (this.state === 'CLOSED') return;
    if (this.state !== 'SYN_SENT') this.emitSegment(this.snd.max, RST | ACK, 0);
    this.close();
  }

  /** Resets the connection and tells the app why (the stack is shutting down). */
  abortWith(err: TcpError): void {
    this.fail(err, true);
  }

  protected fail(err: TcpError, reset: boolean): void {
    const app = this.app;
    this.app = undefined;
    if (reset) this.abort();
    else this.close();
    app?.onError(err);
  }

  close(): void {
    if (this.state === 'CLOSED') return;
    this.state = 'CLOSED';
    this.snd.buf.clear();
    this.rcv.rq.clear();
    this.account();
    this.host.memory.forget(this);
    this.host.timers.set(this, 0);
    this.host.release(this.key);
  }

  /** Bytes this connection holds (send buffer plus out-of-order data). */
  get bufferedBytes(): number {
    return this.snd.buf.length + this.rcv.rq.bytes;
  }

  // --- timers ------------------------------------------------------------------------------------------------

  protected armTimers(): void {
    if (this.state === 'CLOSED') return;
    // Runs after every segment: plain comparisons, no array of the five deadlines.
    let next = earliest(earliest(earliest(this.snd.rtoAt, this.snd.persistAt), this.rcv.ackAt), this.closeAt);
    next = earliest(next, this.ka.at);
    // A later deadline keeps the earlier queue entry; it fires early, finds nothing due and re-arms.
    if (next > 0 && (this.queuedAt === 0 || next < this.queuedAt)) {
      this.queuedAt = next;
      this.host.timers.set(this, next);
    }
  }

  abstract onTimer(now: number): void;
}
