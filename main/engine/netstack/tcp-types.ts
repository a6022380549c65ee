// Shared shapes between the TCP connection, its socket and the stack that owns them.
import type { TimerQueue } from './clock.ts';
import type { StackMemory } from './memory.ts';
import type { ReassemblyBudget } from './reassembly.ts';

export type TcpState =
  | 'SYN_SENT'
  | 'SYN_RECEIVED'
  | 'ESTABLISHED'
  | 'FIN_WAIT_1'
  | 'FIN_WAIT_2'
  | 'CLOSE_WAIT'
  | 'CLOSING'
  | 'LAST_ACK'
  | 'TIME_WAIT'
  | 'CLOSED';

export interface TcpConfig {
  /** Largest IP packet the link carries (Tailscale's default MTU is 1280). */
  mtu: number;
  /** Receive buffer per connection (bytes the app has not read plus what may arrive). */
  rcvBuf: number;
  /**
   * Send buffer per connection (unsent plus unacknowledged bytes). It bounds what is in flight: at 1 MiB an upload
   * through the proxy stopped at ~1 MiB per round trip while the round trip under load grew to several ms, and the
   * engine's thread sat a third idle (tailscaled's gVisor lets its send buffer grow to 6 MiB).
   */
  sndBuf: number;
  minRtoMs: number;
  /** Retransmissions of data before the connection is abandoned. */
  maxRetries: number;
  /** SYN / SYN-ACK retransmissions before a handshake is abandoned. */
  synRetries: number;
  timeWaitMs: number;
  finWait2Ms: number;
  delayedAckMs: number;
  keepAliveIntervalMs: number;
  keepAliveCount: number;
}

export const DEFAULT_TCP_CONFIG: TcpConfig = {
  mtu: 1280,
  rcvBuf: 1024 * 1024,
  sndBuf: 4 * 1024 * 1024,
  minRtoMs: 200,
  maxRetries: 12,
  synRetries: 5,
  timeWaitMs: 60_000,
  finWait2Ms: 60_000,
  delayedAckMs: 40,
  keepAliveIntervalMs: 75_000,
  keepAliveCount: 9,
};

/** What a TCP failure looks like to the app: a Node-style error with a code. */
export class TcpError extends Error {
  override readonly name = 'TcpError';
  constructor(
    readonly code:
      | 'ECONNABORTED'
      | 'ECONNREFUSED'
      | 'ECONNRESET'
      | 'ETIMEDOUT'
      | 'EADDRINUSE'
      | 'EMFILE'
      | 'ENETUNREACH'
      | 'EPIPE',
    message: string,
  ) {
    super(message);
  }
}

/** The app side of a connection (the Duplex socket): the connection calls these. */
export interface TcpApp {
  onConnect(): void;
  /** In-order bytes; `chunk` may be a view into the packet, valid only during the call (copy what is kept). */
  onData(chunk: Uint8Array): void;
  /** The peer sent FIN: no more data. */
  onEnd(): void;
  /** Our FIN was acknowledged. */
  onFinAcked(): void;
  /** The send buffer has room again. */
  onWritable(): void;
  /** The connection failed or was reset; it is gone. */
  onError(err: TcpError): void;
  /** Bytes delivered but not yet read by the app (they count against the receive window). */
  bufferedBytes(): number;
}

/** Counters of dropped or refused input, by reason. */
export type DropCounters = Record<string, number>;

/** What a connection needs from the stack. */
export interface TcpHost {
  readonly config: TcpConfig;
  /** Out-of-order bytes all connections may hold together. */
  readonly reassemblyBudget: ReassemblyBudget;
  /** Bytes all connections hold together (buffers, unread and out-of-order data). */
  readonly memory: StackMemory;
  readonly timers: TimerQueue;
  now(): number;
  emit(packet: Uint8Array): void;
  /** Bytes for a packet about to be emitted (valid until the next call: emit it first). */
  packetBytes(n: number): Uint8Array;
  drop(reason: string): void;
  /** The connection reached CLOSED: forget its 4-tuple. */
  release(key: string): void;
  /** A passive connection finished its handshake. */
  established(key: string): void;
}
