// The sending half of a TCP connection: sequence state, the send buffer, segmentation under the send and
// congestion windows, RTT sampling, retransmission (timeout and fast retransmit) and zero-window probing.
import { NewReno, RttEstimator } from './congestion.ts';
import { seqAdd, seqDiff, seqGe, seqGt, seqLt, TCP_FLAGS } from './segment.ts';
import { SendBuffer } from './send-buffer.ts';

const { ACK, PSH, FIN } = TCP_FLAGS;

/** Where the sender's segments go: the connection adds ACK number, window and addresses. */
export interface SegmentSink {
  sendSegment(seq: number, flags: number, payload?: Uint8Array): void;
  /** A segment carrying `length` bytes of the send buffer from `offset` (copied once, into the packet). */
  sendData(seq: number, flags: number, offset: number, length: number): void;
}

export type AckVerdict = 'ok' | 'old' | 'unsent';

export class TcpSender {
  iss = 0;
  /** Oldest unacknowledged sequence number. */
  una = 0;
  /** Next sequence number to send (pulled back to una after a timeout: go-back-N). */
  nxt = 0;
  /** Highest sequence number sent so far (plus one). */
  max = 0;
  /** Peer's window in bytes (scaled), and the segment that last set it (RFC 9293 SND.WL1/WL2). */
  wnd = 0;
  private wl1 = 0;
  private wl2 = 0;
  /** Peer's window scale shift. */
  shift = 0;
  mss: number;
  readonly buf = new SendBuffer();
  /** Sequence number of the buffer's first byte. */
  private bufSeq = 0;
  finQueued = false;
  /** Seq of our FIN once its place is known (end of data), or -1. */
  finSeq = -1;
  readonly rtt: RttEstimator;
  readonly cc: NewReno;
  dupAcks = 0;
  private timing = false;
  private rttSeq = 0;
  private rttStart = 0;
  /** Consecutive timeouts without progress. */
  retries = 0;
  rtoAt = 0;
  persistAt = 0;
  private persistDelay = 0;
  /** Counters for tests and diagnostics. */
  stats = { retransmits: 0, fastRetransmits: 0, timeouts: 0, probes: 0, segments: 0 };

  constructor(
    private readonly sink: SegmentSink,
    private readonly now: () => number,
    mss: number,
    minRto?: number,
  ) {
    this.mss = mss;
    this.rtt = new RttEstimator(minRto);
    this.cc = new NewReno(mss);
  }

  /** Our SYN occupies iss. */
  start(iss: number): void {
    this.iss = iss;
    this.una = iss;
    this.nxt = seqAdd(iss, 1);
    this.max = this.nxt;
    this.bufSeq = this.nxt;
  }

  setMss(mss: number): void {
    this.mss = mss;
    this.cc.setMss(mss);
  }

  /** Initial send window from the peer's SYN or SYN-ACK (never scaled). */
  initWindow(window: number, seq: number, ack: number): void {
    this.wnd = window;
    this.wl1 = seq;
    this.wl2 = ack;
  }

  get flight(): number {
    return seqDiff(this.nxt, this.una);
  }

  private get dataEnd(): number {
    return seqAdd(this.bufSeq, this.buf.length);
  }

  /** Bytes written by the app and not yet sent. */
  get unsent(): number {
    return Math.max(0, seqDiff(this.dataEnd, this.nxt));
  }

  get finAcked(): boolean {
    return this.finSeq >= 0 && seqGt(this.una, this.finSeq);
  }

  get finSent(): boolean {
    return this.finSeq >= 0 && seqGt(this.max, this.finSeq);
  }

  /** Everything sent has been acknowledged. */
  get idle(): boolean {
    return this.una === this.max;
  }

  /** Processes the ACK field of an acceptable segment. */
  onAck(seq: number, ack: number, window: number, hasPayload: boolean, flags: number): AckVerdict {
    if (seqGt(ack, this.max)) return 'unsent';
    if (seqLt(ack, this.una)) return 'old';
    const scaled = window * 2 ** this.shift;
    let windowChanged = false;
    if (seqLt(this.wl1, seq) || (this.wl1 === seq && seqGe(ack, this.wl2))) {
      windowChanged = scaled !== this.wnd;
      this.wnd = scaled;
      this.wl1 = seq;
      this.wl2 = ack;
    }
    const acked = seqDiff(ack, this.una);
    if (acked === 0) {
      if (!hasPayload && !windowChanged && !(flags & FIN) && this.flight > 0) this.onDupAck();
      this.output();
      return 'ok';
    }
    const now = this.now();
    if (this.timing && seqGt(ack, this.rttSeq)) {
      this.rtt.sample(now - this.rttStart);
      this.timing = false;
    }
    this.retries = 0;
    const dataAcked = Math.min(this.buf.length, Math.max(0, seqDiff(ack, this.bufSeq)));
    this.buf.consume(dataAcked);
    this.bufSeq = seqAdd(this.bufSeq, dataAcked);
    this.una = ack;
    if (seqLt(this.nxt, ack)) this.nxt = ack;
    if (this.cc.inRecovery) {
      if (seqGe(ack, this.cc.recover)) {
        this.cc.exitRecovery(this.flight);
      } else {
        // Partial ACK: the next hole is lost too; resend it now rather than waiting for a timeout.
        this.retransmitFirst();
        this.cc.onPartialAck(acked);
      }
    } else {
      this.cc.onAck(acked);
    }
    this.dupAcks = 0;
    this.persistDelay = 0;
    this.rtoAt = this.flight > 0 ? now + this.rtt.rto : 0;
    this.output();
    return 'ok';
  }

  private onDupAck(): void {
    this.dupAcks++;
    if (this.dupAcks === 3 && !this.cc.inRecovery) {
      this.cc.enterRecovery(this.flight, this.max);
      this.stats.fastRetransmits++;
      this.retransmitFirst();
    } else if (this.dupAcks > 3 && this.cc.inRecovery) {
      this.cc.onDupAckInRecovery();
    }
  }

  /** Resends the segment at una without moving nxt. */
  private retransmitFirst(): void {
    const len = Math.min(this.mss, Math.max(0, seqDiff(this.dataEnd, this.una)));
    const fin = this.finQueued && seqAdd(this.una, len) === this.dataEnd && this.finSent;
    if (len === 0 && !fin) return;
    this.timing = false; // Karn: no RTT samples from retransmitted data
    this.stats.retransmits++;
    const flags = ACK | (fin ? FIN : 0);
    if (len > 0) this.sink.sendData(this.una, flags, seqDiff(this.una, this.bufSeq), len);
    else this.sink.sendSegment(this.una, flags);
  }

  /**
   * Sends what the windows allow. `holdTail`: the app is writing now and may write more in this turn of the event
   * loop, so a last segment shorter than the MSS waits while others are in flight, and the caller sends it at the
   * turn's end (as Linux's autocork merges small writes). Returns whether such a tail is held.
   */
  output(holdTail = false): boolean {
    const now = this.now();
    let held = false;
    for (let guard = 0; guard < 100_000; guard++) {
      const flight = this.flight;
      const usable = Math.min(this.wnd, this.cc.cwnd) - flight;
      const unsent = this.unsent;
      if (unsent > 0) {
        const len = Math.min(this.mss, unsent, usable);
        if (len <= 0) break;
        // Silly-window avoidance: with data in flight, wait for room for a full segment.
        if (len < this.mss && len < unsent && flight > 0) break;
        if (holdTail && len < this.mss && len === unsent && flight > 0 && !this.finQueued) {
          held = true;
          break;
        }
        const fin = this.finQueued && len === unsent;
        if (!this.timing && !seqLt(this.nxt, this.max)) {
          this.timing = true;
          this.rttSeq = this.nxt;
          this.rttStart = now;
        }
        if (seqLt(this.nxt, this.max)) this.stats.retransmits++;
        const flags = ACK | (len === unsent ? PSH : 0) | (fin ? FIN : 0);
        this.sink.sendData(this.nxt, flags, seqDiff(this.nxt, this.bufSeq), len);
        this.stats.segments++;
        if (fin) this.finSeq = this.dataEnd;
        this.nxt = seqAdd(this.nxt, len + (fin ? 1 : 0));
      } else if (this.finQueued && this.nxt === this.dataEnd) {
        this.finSeq = this.dataEnd;
        this.sink.sendSegment(this.nxt, ACK | FIN);
        this.nxt = seqAdd(this.nxt, 1);
      } else {
        break;
      }
      if (seqGt(this.nxt, this.max)) this.max = this.nxt;
      if (this.rtoAt === 0) this.rtoAt = now + this.rtt.rto;
    }
    // Zero window with data waiting and nothing in flight to carry an update back: probe (RFC 9293 §3.8.6.1).
    if (this.wnd === 0 && this.unsent > 0 && this.flight === 0) {
      if (this.persistAt === 0) {
        if (this.persistDelay === 0) this.persistDelay = this.rtt.rto;
        this.persistAt = now + this.persistDelay;
      }
    } else {
      this.persistAt = 0;
    }
    return held;
  }

  /** The retransmission timer fired (data state). Returns false when the connection should give up. */
  onRetransmitTimeout(maxRetries: number): boolean {
    this.rtoAt = 0;
    if (this.flight === 0) return true;
    this.retries++;
    this.stats.timeouts++;
    if (this.retries > maxRetries) return false;
    this.cc.onTimeout(this.flight);
    this.rtt.backoff();
    this.timing = false;
    this.dupAcks = 0;
    this.nxt = this.una; // go-back-N from the first unacknowledged byte
    this.output();
    if (this.rtoAt === 0 && this.flight > 0) this.rtoAt = this.now() + this.rtt.rto;
    return true;
  }

  /** The persist timer fired: a probe that makes the peer repeat its window (seq una-1, no data). */
  onPersist(): void {
    this.persistAt = 0;
    if (!(this.wnd === 0 && this.unsent > 0 && this.flight === 0)) return;
    this.stats.probes++;
    this.sink.sendSegment(seqAdd(this.una, -1), ACK);
    this.persistDelay = Math.min(60_000, Math.max(this.persistDelay, 200) * 2);
    this.persistAt = this.now() + this.persistDelay;
  }
}
