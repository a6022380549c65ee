// The one error type of the DERP client. kind tells a caller what to do: 'unreachable' (no TCP/TLS connection:
// try another node or later), 'timeout' (a bound ran out: connect, watchdog, ping), 'protocol' (the server
// said something we cannot accept: wrong HTTP answer, bad frame, box that does not open, certificate
// mismatch), 'closed' (the connection ended, by the peer or by close()).

export type DerpErrorKind = 'unreachable' | 'protocol' | 'timeout' | 'closed';

export class DerpError extends Error {
  override readonly name = 'DerpError';
  constructor(
    readonly kind: DerpErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
