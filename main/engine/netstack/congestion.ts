// Congestion control (NewReno, RFC 5681 + RFC 6582) and the retransmission timer's estimator (RFC 6298).

export const MIN_RTO_MS = 200;
export const MAX_RTO_MS = 60_000;
export const INITIAL_RTO_MS = 1_000;

/** RFC 6298 smoothed RTT and RTO, with exponential backoff. */
export class RttEstimator {
  srtt = 0;
  rttvar = 0;
  rto = INITIAL_RTO_MS;
  private measured = false;

  constructor(
    private readonly minRto = MIN_RTO_MS,
    private readonly maxRto = MAX_RTO_MS,
  ) {}

  sample(rttMs: number): void {
    const r = Math.max(0, rttMs);
    if (!this.measured) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.measured = true;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = Math.min(this.maxRto, Math.max(this.minRto, this.srtt + Math.max(1, 4 * this.rttvar)));
  }

  backoff(): void {
    this.rto = Math.min(this.maxRto, this.rto * 2);
  }
}

/** RFC 6928's initial window: 10 segments, at most 14600 bytes' worth (but never under 2 segments). */
function initialWindow(mss: number): number {
  return Math.min(10 * mss, Math.max(2 * mss, 14_600));
}

/** NewReno's window: slow start, congestion avoidance, fast retransmit/recovery with partial ACKs. */
export class NewReno {
  cwnd: number;
  ssthresh = Number.MAX_SAFE_INTEGER;
  inRecovery = false;
  /** SND.NXT when recovery began; an ACK beyond it ends recovery. */
  recover = 0;
  private avoidAcc = 0;

  constructor(private mss: number) {
    this.cwnd = initialWindow(mss);
  }

  setMss(mss: number): void {
    this.mss = mss;
    this.cwnd = initialWindow(mss);
  }

  /** New data acknowledged outside recovery. */
  onAck(acked: number): void {
    if (this.cwnd < this.ssthresh) {
      // Slow start counts every byte acknowledged (as Linux does): receivers that ACK a whole batch at once
      // would otherwise hold the window back (RFC 3465's limit of 2 segments per ACK assumes per-pair ACKs).
      this.cwnd = Math.min(this.cwnd + acked, Math.max(this.ssthresh, this.cwnd + this.mss));
      return;
    }
    this.avoidAcc += acked;
    if (this.avoidAcc >= this.cwnd) {
      this.avoidAcc -= this.cwnd;
      this.cwnd += this.mss;
    }
  }

  /** Third duplicate ACK: halve, enter recovery. */
  enterRecovery(flight: number, sndNxt: number): void {
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * this.mss);
    this.cwnd = this.ssthresh + 3 * this.mss;
    this.inRecovery = true;
    this.recover = sndNxt;
  }

  /** A further duplicate ACK in recovery: one more segment has left the network. */
  onDupAckInRecovery(): void {
    this.cwnd += this.mss;
  }

  /** A partial ACK in recovery (RFC 6582 §3.2 step 5): deflate by what it acked, then add one segment. */
  onPartialAck(acked: number): void {
    this.cwnd = Math.max(this.mss, this.cwnd - acked + this.mss);
  }

  /** A full ACK ends recovery. */
  exitRecovery(flight: number): void {
    this.cwnd = Math.max(this.mss, Math.min(this.ssthresh, flight + this.mss));
    this.inRecovery = false;
  }

  /** Retransmission timeout: back to one segment and slow start. */
  onTimeout(flight: number): void {
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * this.mss);
    this.cwnd = this.mss;
    this.inRecovery = false;
    this.avoidAcc = 0;
  }
}
