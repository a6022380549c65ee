// What the proxies share: the injected dialer and resolver, a bounded reader for handshakes, name resolution with
// a timeout, and a two-way splice that tears both sides down on error.
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Opens a stream to address:port (an IP address; names are resolved first). The engine backs it with the netstack. */
export type Dialer = (address: string, port: number) => Promise<Duplex>;
/** Resolves a name to addresses (the engine backs it with MagicDNS). */
export type Resolver = (name: string) => Promise<string[]>;

export type DialFailure = 'resolve' | 'refused' | 'timeout' | 'unreachable' | 'failed';

export class ProxyDialError extends Error {
  override readonly name = 'ProxyDialError';
  constructor(
    readonly kind: DialFailure,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Tells the log why proxied connections fail (the client only sees a reply code or status), at most `perMinute`
 * lines a minute so a client retrying in a loop cannot flood it; what was held back is counted in the next line.
 */
export class DialFailureReport {
  private windowStart = 0;
  private inWindow = 0;
  private heldBack = 0;

  constructor(
    private readonly log: (m: string) => void,
    private readonly perMinute = 20,
    private readonly now: () => number = Date.now,
  ) {}

  report(proxy: string, e: ProxyDialError): void {
    const t = this.now();
    if (t - this.windowStart >= 60_000) {
      this.windowStart = t;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perMinute) {
      this.heldBack++;
      return;
    }
    this.inWindow++;
    const more = this.heldBack > 0 ? ` (${this.heldBack} more not logged)` : '';
    this.heldBack = 0;
    this.log(`${proxy} proxy: ${e.message}${more}`);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(onTimeout()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Resolves `host` if it is a name, then dials it; every failure becomes a ProxyDialError with a plain message. */
export async function dialTarget(
  host: string,
  port: number,
  dial: Dialer,
  resolve: Resolver | undefined,
  timeoutMs: number,
): Promise<Duplex> {
  let address = host;
  if (!isIP(host)) {
    if (!resolve) throw new ProxyDialError('resolve', `cannot resolve ${host}: no resolver is configured`);
    let addresses: string[];
    try {
      addresses = await withTimeout(resolve(host), timeoutMs, () => new Error('timed out'));
    } catch (e) {
      throw new ProxyDialError('resolve', `cannot resolve ${host}: ${(e as Error).message}`);
    }
    const first = addresses.find((a) => isIP(a) === 4) ?? addresses.find((a) => isIP(a) === 6);
    if (!first) throw new ProxyDialError('resolve', `${host} has no address`);
    address = first;
  }
  let late = false;
  const dialing = dial(address, port);
  // A connection that comes up after we gave up on it is nobody's: closed at once rather than left open.
  dialing.then(
    (s) => late && s.destroy(),
    () => {},
  );
  try {
    return await withTimeout(dialing, timeoutMs, () => {
      late = true;
      return Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' });
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const where = `${host} port ${port}`;
    if (code === 'ECONNREFUSED') throw new ProxyDialError('refused', `${where} refused the connection`);
    if (code === 'ETIMEDOUT') throw new ProxyDialError('timeout', `${where} did not answer in time`);
    if (code === 'ENETUNREACH' || code === 'EHOSTUNREACH') {
      throw new ProxyDialError('unreachable', `${where} cannot be reached from this node`);
    }
    throw new ProxyDialError('failed', `connecting to ${where} failed: ${(e as Error).message}`);
  }
}

/** Pipes a and b into each other (half-close passes through); an error on either destroys both. */
export function splice(a: Duplex, b: Duplex): void {
  const kill = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', kill);
  b.on('error', kill);
  a.pipe(b);
  b.pipe(a);
}

/**
 * Reads a handshake from a socket with a byte limit and an overall deadline. Reads resolve with exactly the bytes
 * asked for; rest() returns what arrived beyond the handshake (the start of the client's stream).
 */
export class HandshakeReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly onData = (d: Buffer) => {
    this.buf = Buffer.concat([this.buf, d]);
    if (this.buf.length > this.limit) this.fail(new Error('the handshake is too long'));
    this.wake();
  };
  private readonly onEnd = () => this.fail(new Error('the client closed the connection during the handshake'));

  constructor(
    private readonly socket: Socket,
    private readonly limit: number,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(() => this.fail(new Error('the handshake timed out')), timeoutMs);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', (e) => this.fail(e));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private async waitFor(ok: () => boolean): Promise<void> {
    while (!ok()) {
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => {
        this.waiter = r;
      });
    }
  }

  async read(n: number): Promise<Buffer> {
    await this.waitFor(() => this.buf.length >= n);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Bytes up to and including `marker` (e.g. the blank line ending an HTTP head). */
  async readUntil(marker: string): Promise<Buffer> {
    let at = -1;
    await this.waitFor(() => (at = this.buf.indexOf(marker)) >= 0);
    if (at + marker.length > this.limit) throw new Error('the handshake is too long');
    const out = this.buf.subarray(0, at + marker.length);
    this.buf = this.buf.subarray(at + marker.length);
    return out;
  }

  /** Stops reading: clears the deadline, detaches, returns any bytes that came after the handshake. */
  done(): Buffer {
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.pause();
    return this.buf;
  }
}
