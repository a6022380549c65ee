// One TCP connection's state machine (RFC 9293): handshake, segment acceptance, the receive side (in-order
// delivery, reassembly, window, ACK policy), FIN/RST handling and the connection's timers. Sending lives in
// TcpSender; this class decides when it runs.
import type { TimerOwner } from './clock.ts';
import { Reassembly } from './reassembly.ts';
import {
  buildTcpPacket,
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqLt,
  TCP_FLAGS,
  type TcpOptions,
  type TcpSegment,
} from './segment.ts';
import { type SegmentSink, TcpSender } from './tcp-sender.ts';
import { type TcpApp, TcpError, type TcpHost, type TcpState } from './tcp-types.ts';

const { SYN, ACK, FIN, RST } = TCP_FLAGS;

export interface Endpoints {
  localAddr: Uint8Array;
  localPort: number;
  remoteAddr: Uint8Array;
  remotePort: number;
}

/** Smallest send MSS accepted from a peer (a tiny MSS would turn a transfer into a packet flood). */
const MIN_PEER_MSS = 64;

export class TcpConnection implements TimerOwner, SegmentSink {
  state: TcpState;
  readonly snd: TcpSender;
  private readonly rq = new Reassembly();
  irs = 0;
  rcvNxt = 0;
  /** Right edge of the window we advertised; never moved left. */
  private advEdge = 0;
  private rcvShift = 0;
  private readonly rcvBuf: number;
  /** Full-size segments received since the last ACK we sent. */
  private unacked = 0;
  private ackAt = 0;
  private closeAt = 0;
  private synRetries = 0;
  private synSentAt = 0;
  private lastHeard = 0;
  private kaIdle = 0;
  private kaAt = 0;
  private kaProbes = 0;
  private queuedAt = 0;
  private peerSentFin = false;
  app: TcpApp | undefined;
  /** The app let go (destroy after end): finish closing, then vanish. */
  orphan = false;
  readonly ourMss: number;

  constructor(
    private readonly host: TcpHost,
    readonly key: string,
    readonly ep: Endpoints,
    iss: number,
    passive: boolean,
  ) {
    const cfg = host.config;
    this.ourMss = cfg.mtu - (ep.localAddr.length === 4 ? 40 : 60);
    this.rcvBuf = cfg.rcvBuf;
    this.snd = new TcpSender(this, () => host.now(), this.ourMss, cfg.minRtoMs);
    this.snd.start(iss);
    this.state = passive ? 'SYN_RECEIVED' : 'SYN_SENT';
    this.lastHeard = host.now();
  }

  /** Our window scale: the smallest shift that lets the 16-bit field cover the receive buffer. */
  private ourShift(): number {
    let s = 0;
    while (s < 14 && 0xffff * 2 ** s < this.rcvBuf) s++;
    return s;
  }

  /** Active open: send SYN. */
  connect(): void {
    this.rcvShift = this.ourShift();
    this.sendSyn();
  }

  /** Passive open from a SYN: remember the peer, answer SYN-ACK. */
  acceptSyn(seg: TcpSegment): void {
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.takeSynOptions(seg.options);
    this.snd.initWindow(seg.window, seg.seq, this.snd.iss);
    this.sendSyn();
  }

  private takeSynOptions(o: TcpOptions): void {
    const peerMss = o.mss ?? (this.ep.localAddr.length === 4 ? 536 : 1220);
    this.snd.setMss(Math.max(MIN_PEER_MSS, Math.min(this.ourMss, peerMss)));
    if (o.wscale !== undefined) {
      this.snd.shift = Math.min(14, o.wscale);
      if (this.state === 'SYN_RECEIVED') this.rcvShift = this.ourShift();
    } else {
      this.snd.shift = 0;
      this.rcvShift = 0;
    }
  }

  private sendSyn(): void {
    const passive = this.state === 'SYN_RECEIVED';
    const options: TcpOptions = { mss: this.ourMss };
    if (!passive || this.rcvShift > 0 || this.snd.shift > 0) options.wscale = this.rcvShift;
    this.synSentAt = this.host.now();
    // Window in SYN segments is never scaled.
    const window = Math.min(0xffff, this.rcvBuf);
    this.advEdge = seqAdd(this.rcvNxt, window);
    this.emitSegment(this.snd.iss, passive ? SYN | ACK : SYN, window, options);
    this.snd.rtoAt = this.host.now() + this.snd.rtt.rto;
    this.armTimers();
  }

  // --- input -------------------------------------------------------------------------------------------------

  input(seg: TcpSegment): void {
    if (this.state === 'SYN_SENT') this.inputSynSent(seg);
    else if (this.state !== 'CLOSED') this.inputSynchronized(seg);
    this.armTimers();
  }

  private inputSynSent(seg: TcpSegment): void {
    const ackOk = (seg.flags & ACK) !== 0 && seg.ack === this.snd.nxt;
    if (seg.flags & ACK && !ackOk) {
      if (!(seg.flags & RST)) this.sendReset(seg.ack, 0, false);
      this.host.drop('bad-ack-in-syn-sent');
      return;
    }
    if (seg.flags & RST) {
      if (ackOk) {
        this.fail(new TcpError('ECONNREFUSED', 'the peer refused the connection'), false);
        return;
      }
      this.host.drop('bad-rst');
      return;
    }
    if (!(seg.flags & SYN) || !ackOk) {
      this.host.drop('simultaneous-open');
      return;
    }
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.takeSynOptions(seg.options);
    if (this.synRetries === 0) this.snd.rtt.sample(this.host.now() - this.synSentAt);
    this.snd.una = seg.ack;
    this.snd.rtoAt = 0;
    this.snd.initWindow(seg.window, seg.seq, seg.ack);
    this.advEdge = this.rcvNxt;
    this.becomeEstablished();
    this.sendAck();
  }

  private becomeEstablished(): void {
    this.state = this.snd.finQueued ? 'FIN_WAIT_1' : 'ESTABLISHED';
    this.lastHeard = this.host.now();
    this.app?.onConnect();
    this.snd.output();
  }

  /** Data length plus SYN and FIN, which occupy sequence space. */
  private static seqLen(seg: TcpSegment): number {
    return seg.payload.length + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0);
  }

  private acceptable(seg: TcpSegment): boolean {
    const wnd = Math.max(0, seqDiff(this.advEdge, this.rcvNxt));
    const len = TcpConnection.seqLen(seg);
    const start = seqDiff(seg.seq, this.rcvNxt);
    if (len === 0) return wnd === 0 ? start === 0 : start >= 0 && start < wnd;
    if (wnd === 0) return false;
    const last = start + len - 1;
    return (start >= 0 && start < wnd) || (last >= 0 && last < wnd);
  }

  private inputSynchronized(seg: TcpSegment): void {
    const f = seg.flags;
    if (!this.acceptable(seg)) {
      this.host.drop(seqLt(seg.seq, this.rcvNxt) ? 'duplicate' : 'out-of-window');
      // A zero-window probe or a stale duplicate gets our current state back; RSTs never get an answer.
      if (!(f & RST)) this.sendAck();
      return;
    }
    this.lastHeard = this.host.now();
    this.kaProbes = 0;
    if (f & RST) {
      // RFC 5961: only an exact RST resets; one elsewhere in the window gets a challenge ACK.
      if (seg.seq !== this.rcvNxt) {
        this.host.drop('rst-not-exact');
        this.sendAck();
        return;
      }
      // RFC 1337: a reset does not cut TIME_WAIT short (it would let old duplicates into a new connection).
      if (this.state === 'TIME_WAIT') {
        this.host.drop('rst-in-time-wait');
        return;
      }
      if (this.state === 'SYN_RECEIVED') {
        this.close();
        return;
      }
      this.fail(new TcpError('ECONNRESET', 'the peer reset the connection'), false);
      return;
    }
    if (f & SYN) {
      if (this.state === 'SYN_RECEIVED' && seg.seq === this.irs) {
        this.sendSyn();
        return;
      }
      this.host.drop('syn-in-window');
      this.sendAck();
      return;
    }
    if (!(f & ACK)) {
      this.host.drop('no-ack');
      return;
    }
    if (this.state === 'SYN_RECEIVED') {
      if (!(seqGt(seg.ack, this.snd.una) && seqGe(this.snd.max, seg.ack))) {
        this.host.drop('bad-ack');
        this.sendReset(seg.ack, 0, false);
        return;
      }
      this.snd.una = seg.ack;
      this.snd.rtoAt = 0;
      this.snd.initWindow(seg.window * 2 ** this.snd.shift, seg.seq, seg.ack);
      if (this.synRetries === 0) this.snd.rtt.sample(this.host.now() - this.synSentAt);
      this.host.established(this.key);
      this.becomeEstablished();
    }
    const verdict = this.snd.onAck(seg.seq, seg.ack, seg.window, seg.payload.length > 0, f);
    if (verdict === 'unsent') {
      this.host.drop('ack-of-unsent');
      this.sendAck();
      return;
    }
    this.afterAck();
    if (this.state === 'CLOSED') return;
    if (seg.payload.length > 0) this.receiveData(seg);
    if (f & FIN) {
      const finSeq = seqAdd(seg.seq, seg.payload.length);
      if (finSeq === this.rcvNxt) this.receiveFin();
      else if (seqGt(finSeq, this.rcvNxt)) this.rq.finSeq = finSeq;
      else if (this.state === 'TIME_WAIT') {
        this.closeAt = this.host.now() + this.host.config.timeWaitMs;
        this.sendAck();
      }
    }
  }

  /** State changes that follow from our FIN being acknowledged; app notification of free buffer space. */
  private afterAck(): void {
    if (this.snd.finAcked) {
      if (this.state === 'FIN_WAIT_1') {
        this.state = 'FIN_WAIT_2';
        this.app?.onFinAcked();
        if (this.orphan) this.closeAt = this.host.now() + this.host.config.finWait2Ms;
      } else if (this.state === 'CLOSING') {
        this.app?.onFinAcked();
        this.enterTimeWait();
      } else if (this.state === 'LAST_ACK') {
        this.app?.onFinAcked();
        this.close();
        return;
      }
    }
    if (this.snd.buf.length < this.host.config.sndBuf) this.app?.onWritable();
  }

  private receiveData(seg: TcpSegment): void {
    if (!(this.state === 'ESTABLISHED' || this.state === 'FIN_WAIT_1' || this.state === 'FIN_WAIT_2')) {
      this.host.drop('data-after-fin');
      return;
    }
    let payload = seg.payload;
    let seq = seg.seq;
    const lead = seqDiff(this.rcvNxt, seq);
    if (lead > 0) {
      payload = payload.subarray(lead);
      seq = this.rcvNxt;
    }
    const room = seqDiff(this.advEdge, seq);
    if (payload.length > room) payload = payload.subarray(0, Math.max(0, room));
    if (payload.length === 0) {
      this.sendAck();
      return;
    }
    if (seq !== this.rcvNxt) {
      if (this.rq.insert(seq, payload, this.rcvNxt, this.advEdge) < 0) this.host.drop('reassembly-full');
      this.sendAck(); // a duplicate ACK tells the sender about the hole
      return;
    }
    const hadHole = this.rq.segments > 0;
    this.deliver(payload.slice());
    for (const piece of this.rq.takeReady(this.rcvNxt)) this.deliver(piece);
    if (this.rq.finSeq >= 0 && this.rq.finSeq === this.rcvNxt) this.receiveFin();
    if (hadHole || ++this.unacked >= 2) this.sendAck();
    else if (this.ackAt === 0) this.ackAt = this.host.now() + this.host.config.delayedAckMs;
  }

  private deliver(data: Uint8Array): void {
    this.rcvNxt = seqAdd(this.rcvNxt, data.length);
    this.app?.onData(data);
  }

  private receiveFin(): void {
    if (this.peerSentFin) return;
    this.peerSentFin = true;
    this.rq.clear();
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.app?.onEnd();
    if (this.state === 'ESTABLISHED') this.state = 'CLOSE_WAIT';
    else if (this.state === 'FIN_WAIT_1') {
      if (this.snd.finAcked) this.enterTimeWait();
      else this.state = 'CLOSING';
    } else if (this.state === 'FIN_WAIT_2') this.enterTimeWait();
    this.sendAck();
  }

  private enterTimeWait(): void {
    this.state = 'TIME_WAIT';
    this.snd.rtoAt = 0;
    this.snd.persistAt = 0;
    this.kaAt = 0;
    this.closeAt = this.host.now() + this.host.config.timeWaitMs;
  }

  // --- output ------------------------------------------------------------------------------------------------

  /** The window field we send now (scaled), moving the right edge forward only in worthwhile steps. */
  private windowField(): number {
    const free = Math.max(0, this.rcvBuf - (this.app?.bufferedBytes() ?? 0));
    const proposed = seqAdd(this.rcvNxt, free);
    const gain = seqDiff(proposed, this.advEdge);
    // Receiver-side silly-window avoidance (RFC 9293 §3.8.6.2.2): grow by at least a segment.
    if (gain > 0 && (gain >= Math.min(this.rcvBuf / 2, this.snd.mss) || free === this.rcvBuf)) {
      this.advEdge = proposed;
    }
    return Math.max(0, seqDiff(this.advEdge, this.rcvNxt)) >>> this.rcvShift;
  }

  sendSegment(seq: number, flags: number, payload?: Uint8Array): void {
    this.emitSegment(seq, flags, this.windowField(), undefined, payload);
  }

  private emitSegment(seq: number, flags: number, window: number, options?: TcpOptions, payload?: Uint8Array): void {
    if (flags & ACK) {
      this.unacked = 0;
      this.ackAt = 0;
    }
    const { localAddr, localPort, remoteAddr, remotePort } = this.ep;
    this.host.emit(
      buildTcpPacket({
        src: localAddr,
        dst: remoteAddr,
        srcPort: localPort,
        dstPort: remotePort,
        seq,
        ack: flags & ACK ? this.rcvNxt : 0,
        flags,
        window,
        options,
        payload,
      }),
    );
  }

  sendAck(): void {
    if (this.state === 'SYN_SENT' || this.state === 'CLOSED') return;
    // SND.MAX, not SND.NXT: after a timeout nxt is pulled back, and a pure ACK from behind the peer's RCV.NXT
    // would be unacceptable to it (and its ACK information lost).
    this.sendSegment(this.snd.max, ACK);
  }

  private sendReset(seq: number, ack: number, withAck: boolean): void {
    this.emitSegment(seq, RST | (withAck ? ACK : 0), 0, undefined, undefined);
    void ack;
  }

  // --- app calls ---------------------------------------------------------------------------------------------

  /** Queues bytes from the app; false when the send buffer is full (wait for onWritable). */
  write(data: Uint8Array): boolean {
    this.snd.buf.append(data);
    if (this.state !== 'SYN_SENT' && this.state !== 'SYN_RECEIVED') this.snd.output();
    this.armTimers();
    return this.snd.buf.length < this.host.config.sndBuf;
  }

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
    if (this.state === 'CLOSED' || this.state === 'SYN_SENT' || this.peerSentFin) return;
    const known = seqDiff(this.advEdge, this.rcvNxt);
    const free = this.rcvBuf - (this.app?.bufferedBytes() ?? 0);
    if (known < this.rcvBuf / 2 && free - known >= Math.min(this.rcvBuf / 4, 2 * this.snd.mss)) {
      this.sendAck();
      this.armTimers();
    }
  }

  setKeepAlive(idleMs: number): void {
    this.kaIdle = idleMs;
    this.kaProbes = 0;
    this.kaAt = idleMs > 0 ? this.host.now() + idleMs : 0;
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

  private fail(err: TcpError, reset: boolean): void {
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
    this.rq.clear();
    this.host.timers.set(this, 0);
    this.host.release(this.key);
  }

  /** Bytes this connection holds (send buffer plus out-of-order data). */
  get bufferedBytes(): number {
    return this.snd.buf.length + this.rq.bytes;
  }

  // --- timers ------------------------------------------------------------------------------------------------

  private armTimers(): void {
    if (this.state === 'CLOSED') return;
    let next = 0;
    for (const t of [this.snd.rtoAt, this.snd.persistAt, this.ackAt, this.closeAt, this.kaAt]) {
      if (t > 0 && (next === 0 || t < next)) next = t;
    }
    // A later deadline keeps the earlier queue entry; it fires early, finds nothing due and re-arms.
    if (next > 0 && (this.queuedAt === 0 || next < this.queuedAt)) {
      this.queuedAt = next;
      this.host.timers.set(this, next);
    }
  }

  onTimer(now: number): void {
    this.queuedAt = 0;
    if (this.closeAt > 0 && now >= this.closeAt) {
      if (this.state === 'FIN_WAIT_2' || this.orphan) this.abort();
      else this.close();
      return;
    }
    if (this.ackAt > 0 && now >= this.ackAt) this.sendAck();
    if (this.snd.rtoAt > 0 && now >= this.snd.rtoAt) this.onRetransmitTimer(now);
    if (this.state === 'CLOSED') return;
    if (this.snd.persistAt > 0 && now >= this.snd.persistAt) this.snd.onPersist();
    if (this.kaAt > 0 && now >= this.kaAt) this.onKeepAliveTimer(now);
    this.armTimers();
  }

  private onRetransmitTimer(now: number): void {
    if (this.state === 'SYN_SENT' || this.state === 'SYN_RECEIVED') {
      this.snd.rtoAt = 0;
      if (++this.synRetries > this.host.config.synRetries) {
        if (this.state === 'SYN_RECEIVED') this.host.drop('syn-received-timeout');
        this.fail(new TcpError('ETIMEDOUT', 'the peer did not answer the connection request'), false);
        return;
      }
      this.snd.rtt.backoff();
      this.snd.stats.retransmits++;
      this.sendSyn();
      return;
    }
    if (!this.snd.onRetransmitTimeout(this.host.config.maxRetries)) {
      this.fail(new TcpError('ETIMEDOUT', 'the peer stopped acknowledging data'), true);
    }
    void now;
  }

  private onKeepAliveTimer(now: number): void {
    this.kaAt = 0;
    if (this.kaIdle <= 0 || this.state !== 'ESTABLISHED') return;
    const idleUntil = this.lastHeard + this.kaIdle;
    if (this.kaProbes === 0 && idleUntil > now) {
      this.kaAt = idleUntil;
      return;
    }
    if (this.kaProbes > 0 && this.lastHeard > now - this.host.config.keepAliveIntervalMs) {
      this.kaProbes = 0;
      this.kaAt = this.lastHeard + this.kaIdle;
      return;
    }
    if (this.kaProbes >= this.host.config.keepAliveCount) {
      this.fail(new TcpError('ETIMEDOUT', 'the peer stopped answering keep-alives'), true);
      return;
    }
    this.kaProbes++;
    this.emitSegment(seqAdd(this.snd.una, -1), ACK, this.windowField());
    this.kaAt = now + this.host.config.keepAliveIntervalMs;
  }
}
