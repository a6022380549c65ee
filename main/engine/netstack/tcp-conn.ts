// One TCP connection's state machine (RFC 9293): handshake, segment processing, ACK policy, FIN/RST handling and
// the connection's timers. Sending lives in TcpSender, the receive window and reassembly in TcpReceiver.
import { seqAdd, seqGe, seqGt, seqLe, seqLt, TCP_FLAGS, type TcpOptions, type TcpSegment } from './segment.ts';
import { ConnectionCore, TURN_ACK } from './tcp-core.ts';
import { TcpError } from './tcp-types.ts';

export type { Endpoints } from './tcp-core.ts';

const { SYN, ACK, FIN, RST } = TCP_FLAGS;

/** Smallest send MSS accepted from a peer (a tiny MSS would turn a transfer into a packet flood). */
const MIN_PEER_MSS = 64;

export class TcpConnection extends ConnectionCore {
  /** Active open: send SYN. */
  connect(): void {
    this.rcv.shift = this.rcv.ourShift();
    this.sendSyn();
  }

  /** Passive open from a SYN: remember the peer, answer SYN-ACK. */
  acceptSyn(seg: TcpSegment): void {
    this.rcv.start(seg.seq);
    this.takeSynOptions(seg.options);
    this.snd.initWindow(seg.window, seg.seq, this.snd.iss);
    this.sendSyn();
  }

  protected takeSynOptions(o: TcpOptions): void {
    const peerMss = o.mss ?? (this.ep.localAddr.length === 4 ? 536 : 1220);
    this.snd.setMss(Math.max(MIN_PEER_MSS, Math.min(this.ourMss, peerMss)));
    this.sackOk = o.sackOk === true;
    if (o.wscale !== undefined) {
      this.snd.shift = Math.min(14, o.wscale);
      if (this.state === 'SYN_RECEIVED') this.rcv.shift = this.rcv.ourShift();
    } else {
      this.snd.shift = 0;
      this.rcv.shift = 0;
    }
  }

  protected sendSyn(): void {
    const passive = this.state === 'SYN_RECEIVED';
    const options: TcpOptions = { mss: this.ourMss };
    if (!passive || this.rcv.shift > 0 || this.snd.shift > 0) options.wscale = this.rcv.shift;
    // We send SACK blocks (receiver side); our own sender recovers with NewReno and ignores blocks it receives.
    if (!passive || this.sackOk) options.sackOk = true;
    this.synSentAt = this.host.now();
    // Window in SYN segments is never scaled.
    const window = Math.min(0xffff, this.rcv.bufSize);
    this.rcv.advEdge = seqAdd(this.rcv.nxt, window);
    this.emitSegment(this.snd.iss, passive ? SYN | ACK : SYN, window, options);
    this.snd.rtoAt = this.host.now() + this.snd.rtt.rto;
    this.armTimers();
  }

  // --- input -------------------------------------------------------------------------------------------------

  input(seg: TcpSegment): void {
    if (this.state === 'SYN_SENT') this.inputSynSent(seg);
    else if (this.state !== 'CLOSED') this.inputSynchronized(seg);
    this.account();
    this.armTimers();
  }

  private inputSynSent(seg: TcpSegment): void {
    const ackOk = (seg.flags & ACK) !== 0 && seg.ack === this.snd.nxt;
    if (seg.flags & ACK && !ackOk) {
      if (!(seg.flags & RST)) this.sendReset(seg.ack);
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
    this.rcv.start(seg.seq);
    this.takeSynOptions(seg.options);
    if (this.synRetries === 0) this.snd.rtt.sample(this.host.now() - this.synSentAt);
    this.snd.una = seg.ack;
    this.snd.rtoAt = 0;
    this.snd.initWindow(seg.window, seg.seq, seg.ack);
    this.rcv.advEdge = this.rcv.nxt;
    this.becomeEstablished();
    this.sendAck();
  }

  protected becomeEstablished(): void {
    this.state = this.snd.finQueued ? 'FIN_WAIT_1' : 'ESTABLISHED';
    this.ka.heard(this.host.now());
    this.app?.onConnect();
    this.snd.output();
  }

  protected inputSynchronized(seg: TcpSegment): void {
    const f = seg.flags;
    if (!this.rcv.acceptable(seg)) {
      this.host.drop(seqLt(seg.seq, this.rcv.nxt) ? 'duplicate' : 'out-of-window');
      // A zero-window probe or a stale duplicate gets our current state back; RSTs never get an answer.
      if (!(f & RST)) this.sendAck();
      return;
    }
    this.ka.heard(this.host.now());
    if (f & RST) {
      // RFC 5961: only an exact RST resets; one elsewhere in the window gets a challenge ACK.
      if (seg.seq !== this.rcv.nxt) {
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
      if (this.state === 'SYN_RECEIVED' && seg.seq === this.rcv.irs) {
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
        this.sendReset(seg.ack);
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
      if (finSeq === this.rcv.nxt) this.receiveFin();
      else if (seqGt(finSeq, this.rcv.nxt)) this.rcv.rq.finSeq = finSeq;
      else if (this.state === 'TIME_WAIT') {
        this.closeAt = this.host.now() + this.host.config.timeWaitMs;
        this.sendAck();
      }
    }
  }

  /** State changes that follow from our FIN being acknowledged; app notification of free buffer space. */
  protected afterAck(): void {
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
    // A writer waiting for room hears of it once a quarter of the buffer is free (as Linux's sk_stream_write_space
    // waits for a third), not on every ACK: per-ACK wake-ups took a sliver per ACK and cut the send buffer into
    // thousands of small pieces that every segment's copy had to walk past.
    const free = this.host.config.sndBuf - this.snd.buf.length;
    if (free >= this.host.config.sndBuf / 4 || (free > 0 && this.snd.buf.length === 0)) this.app?.onWritable();
  }

  protected receiveData(seg: TcpSegment): void {
    if (!(this.state === 'ESTABLISHED' || this.state === 'FIN_WAIT_1' || this.state === 'FIN_WAIT_2')) {
      this.host.drop('data-after-fin');
      return;
    }
    // The stack's memory cap is reached: refuse the bytes (the peer resends them) and ask to hear of room.
    const mem = this.host.memory;
    const n = seg.payload.length;
    const appHeld = this.app?.bufferedBytes() ?? 0;
    if (!mem.fits(n) && this.rcv.rq.bytes + appHeld + n > this.receiveFloor && seqLe(seg.seq, this.rcv.nxt)) {
      // In-order data is worth more than what waits beyond a hole (which could otherwise hold the floor forever):
      // under pressure that goes first, as Linux prunes its out-of-order queue.
      if (this.rcv.rq.bytes > 0) this.host.drop('out-of-order-pruned');
      this.rcv.rq.clear();
    }
    if (!mem.fits(n) && this.rcv.rq.bytes + appHeld + n > this.receiveFloor) {
      this.host.drop('memory-full');
      this.host.memory.wait(this);
      this.sendAck();
      return;
    }
    const placed = this.rcv.place(seg.seq, seg.payload);
    if (placed.capped) this.host.drop('reassembly-full');
    if (placed.outOfOrder) {
      this.sendAck(); // a duplicate ACK tells the sender about the hole
      return;
    }
    for (const chunk of placed.chunks) this.app?.onData(chunk);
    if (this.rcv.rq.finSeq >= 0 && this.rcv.rq.finSeq === this.rcv.nxt) this.receiveFin();
    if (placed.filledHole) this.sendAck();
    else if (++this.rcv.unacked >= 2) this.atTurnEnd(TURN_ACK);
    else if (this.rcv.ackAt === 0) this.rcv.ackAt = this.host.now() + this.host.config.delayedAckMs;
  }

  protected receiveFin(): void {
    if (this.rcv.finSeen) return;
    this.rcv.finSeen = true;
    this.rcv.rq.clear();
    this.rcv.nxt = seqAdd(this.rcv.nxt, 1);
    this.app?.onEnd();
    if (this.state === 'ESTABLISHED') this.state = 'CLOSE_WAIT';
    else if (this.state === 'FIN_WAIT_1') {
      if (this.snd.finAcked) this.enterTimeWait();
      else this.state = 'CLOSING';
    } else if (this.state === 'FIN_WAIT_2') this.enterTimeWait();
    this.sendAck();
  }

  // --- timers ------------------------------------------------------------------------------------------------

  onTimer(now: number): void {
    this.queuedAt = 0;
    if (this.closeAt > 0 && now >= this.closeAt) {
      if (this.state === 'FIN_WAIT_2' || this.orphan) this.abort();
      else this.close();
      return;
    }
    if (this.rcv.ackAt > 0 && now >= this.rcv.ackAt) this.sendAck();
    if (this.snd.rtoAt > 0 && now >= this.snd.rtoAt) this.onRetransmitTimer();
    if (this.state === 'CLOSED') return;
    if (this.snd.persistAt > 0 && now >= this.snd.persistAt) this.snd.onPersist();
    if (this.ka.at > 0 && now >= this.ka.at) this.onKeepAliveTimer(now);
    this.account();
    this.armTimers();
  }

  protected onRetransmitTimer(): void {
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
  }

  protected onKeepAliveTimer(now: number): void {
    const cfg = this.host.config;
    const action =
      this.state === 'ESTABLISHED' ? this.ka.fire(now, cfg.keepAliveIntervalMs, cfg.keepAliveCount) : 'none';
    if (action === 'dead') this.fail(new TcpError('ETIMEDOUT', 'the peer stopped answering keep-alives'), true);
    // A probe is an ACK from just before SND.UNA: the peer must answer it with its own ACK.
    else if (action === 'probe') this.emitSegment(seqAdd(this.snd.una, -1), ACK, this.windowField());
  }
}
