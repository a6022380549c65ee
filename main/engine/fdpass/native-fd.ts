// Typed access to the addon's descriptor passing (native/src/fd_pass.cc). Undefined wherever it
// cannot work — Windows (named pipes carry no descriptors), or an addon built before it — so callers stream.
import { loadNativeAddon } from '../tun/native.ts';

export interface FdAddon {
  /** Connects to a Unix socket, sends line with fd attached (SCM_RIGHTS), resolves with the reply line; off the
   *  event loop, each blocking step limited to timeoutMs. fd must stay open until it settles. */
  fdSendTo(path: string, fd: number, line: Uint8Array, timeoutMs: number): Promise<Buffer>;
  /** The first bytes waiting on a socket, not consumed (empty on EOF or timeout). */
  fdPeek(socketFd: number, timeoutMs: number, maxBytes: number): Promise<Buffer>;
  /** One recvmsg: its bytes and the first descriptor attached (-1 if none; any others are closed). */
  fdReceive(socketFd: number, maxBytes: number): { bytes: Buffer; fd: number };
  /** The size of the regular file fd is open for reading; throws (code EBADF/EINVAL) otherwise. */
  fdCheckReadable(fd: number): number;
  /** A close-on-exec copy of fd. */
  fdDup(fd: number): number;
  /** Closes fd (quietly in a worker thread, where fs.close warns about a descriptor it did not open). */
  fdClose(fd: number): void;
  /** The user ID of the process at the other end of a Unix socket. */
  fdPeerUid(socketFd: number): number;
}

let cached: FdAddon | null | undefined;

export function fdAddon(): FdAddon | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  if (process.platform === 'win32') return undefined;
  try {
    const a = loadNativeAddon() as unknown as Partial<FdAddon>;
    if (typeof a.fdSendTo === 'function' && typeof a.fdReceive === 'function') cached = a as FdAddon;
  } catch {}
  return cached ?? undefined;
}
