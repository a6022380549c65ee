// Typed access to the addon's kernel copies for Taildrop (native/src/fd_sendfile.cc, fd_splice.cc), and the kernel
// descriptor under a node socket. Undefined wherever they cannot work — not Linux, or an addon built before them —
// so callers keep their read/write path.
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { loadNativeAddon } from '../tun/native.ts';

export interface KernelCopyAddon {
  /** sendfile(2) of count bytes of inFd at offset to the socket outFd, waiting ≤ waitMs in all for room: bytes sent,
   *  0 at the file's end, or -errno (-EAGAIN: no room within waitMs). */
  fdSendfile(outFd: number, inFd: number, offset: number, count: number, waitMs: number): number;
  /** A pipe for fdSplice, [read end, write end], or -errno. */
  fdPipe(): [number, number] | number;
  /** splice(2) socket → pipe → file at offset, ≤ count bytes, waiting ≤ waitMs while nothing came: bytes on the
   *  disk, 0 when the socket ended, or -errno (-EAGAIN: nothing came within waitMs). */
  fdSplice(
    sockFd: number,
    pipeR: number,
    pipeW: number,
    fileFd: number,
    offset: number,
    count: number,
    waitMs: number,
  ): number;
}

let cached: KernelCopyAddon | null | undefined;

export function kernelCopyAddon(): KernelCopyAddon | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  if (process.platform !== 'linux') return undefined;
  try {
    const a = loadNativeAddon() as unknown as Partial<KernelCopyAddon>;
    const ok = [a.fdSendfile, a.fdPipe, a.fdSplice].every((f) => typeof f === 'function');
    if (ok) cached = a as KernelCopyAddon;
  } catch {}
  return cached ?? undefined;
}

/** The errno values the kernel copies answer with, by name. */
export const E = constants.errno;

/** The errno name of a negative result (for a message), e.g. -32 → 'EPIPE'. */
export function errnoName(result: number): string {
  for (const [name, value] of Object.entries(E)) if (value === -result) return name;
  return `errno ${-result}`;
}

/**
 * The kernel descriptor of a TCP socket node holds, or undefined when there is none to use: a stream that is not a
 * kernel socket (the userspace netstack's), a closed one, or a node whose handle no longer shows it (`_handle.fd`
 * is internal; every use is guarded and undefined means "use the ordinary path").
 */
export function kernelSocketFd(socket: unknown): number | undefined {
  const s = socket as Partial<Socket> & { _handle?: { fd?: unknown } | null };
  if (!s || s.destroyed || typeof s._handle !== 'object' || s._handle === null) return undefined;
  const fd = s._handle.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}
