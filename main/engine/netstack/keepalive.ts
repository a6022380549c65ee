// TCP keep-alive bookkeeping (RFC 1122 §4.2.3.6): after `idleMs` without hearing from the peer, probe every
// interval; after `count` unanswered probes the peer is taken for dead. The connection sends the probes.

export type KeepAliveAction = 'probe' | 'dead' | 'none';

export class KeepAlive {
  idleMs = 0;
  /** When the timer is due (0: off). */
  at = 0;
  private probes = 0;
  private lastHeard: number;

  constructor(now: number) {
    this.lastHeard = now;
  }

  /** An acceptable segment arrived. The timer stays where it is and re-checks when it fires. */
  heard(now: number): void {
    this.lastHeard = now;
    this.probes = 0;
  }

  enable(idleMs: number, now: number): void {
    this.idleMs = idleMs;
    this.probes = 0;
    this.at = idleMs > 0 ? now + idleMs : 0;
  }

  fire(now: number, intervalMs: number, count: number): KeepAliveAction {
    this.at = 0;
    if (this.idleMs <= 0) return 'none';
    const idleUntil = this.lastHeard + this.idleMs;
    if (this.probes === 0 && idleUntil > now) {
      this.at = idleUntil;
      return 'none';
    }
    if (this.probes >= count) return 'dead';
    this.probes++;
    this.at = now + intervalMs;
    return 'probe';
  }
}
