// TCP connections that bypass the tunnel's routes: the engine's own links to control and DERP. While an exit node
// holds the default route, unmarked traffic goes into the tunnel, and a connection to the DERP server that
// carries the tunnel would loop into itself. On Linux the addon creates the socket with SO_MARK 0x80000 (the
// policy rules send that mark to the main table, see linux-router.ts); Node connects it. Elsewhere, or when the
// kernel refuses the mark (no CAP_NET_ADMIN), a plain socket: no rules are installed there either.
import { isIP, Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { loadNativeAddon } from '../tun/native.ts';

/** tailscale's bypass mark and the mask its rules match it under (tsconst/linuxfw.go). */
export const BYPASS_MARK = 0x80000;
export const BYPASS_MASK = 0xff0000;

interface MarkingAddon {
  markedTcpSocket(family: 4 | 6, mark: number): number;
}

/** undefined until tried; false once the addon or the kernel said no (then every socket is a plain one). */
let marking: boolean | undefined;

function markedFd(family: 4 | 6): number | undefined {
  if (marking === false || process.platform !== 'linux') return undefined;
  try {
    const addon = loadNativeAddon() as unknown as Partial<MarkingAddon>;
    if (typeof addon.markedTcpSocket !== 'function') {
      marking = false;
      return undefined;
    }
    const fd = addon.markedTcpSocket(family, BYPASS_MARK);
    marking = true;
    return fd;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'EACCES' || code === 'ERR_TRELLIS_NATIVE_ADDON') marking = false;
    return undefined;
  }
}

/** Userspace networking changes nothing in the OS, so its sockets stay plain: setBypassMarking(false). */
export function setBypassMarking(on: boolean): void {
  marking = on ? undefined : false;
}

/** True when the engine's sockets carry the bypass mark (so policy routing for an exit node is safe). */
export function bypassMarkWorks(): boolean {
  if (marking === undefined) {
    const fd = markedFd(4);
    if (fd !== undefined) new Socket({ fd }).destroy();
  }
  return marking === true;
}

export interface BypassTarget {
  host: string;
  port: number;
  /** 0: either (the resolver's first answer). */
  family?: 0 | 4 | 6;
}

/**
 * A TCP socket connecting to the target, marked to bypass the tunnel where that works; it emits 'connect' and
 * 'error' as net.connect's does. A marked socket's family is fixed when it is made, so a name of unknown family
 * is resolved as IPv4 (DERP nodes name their family; control URLs in the field have IPv4).
 */
export function bypassConnect(t: BypassTarget): Socket {
  const family = t.family ?? 0;
  const literal = isIP(t.host);
  const chosen: 4 | 6 = literal === 4 || literal === 6 ? literal : family === 6 ? 6 : 4;
  const fd = markedFd(chosen);
  if (fd === undefined) return new Socket().connect({ host: t.host, port: t.port, ...(family ? { family } : {}) });
  // Not read from before it is connected: a read on the unconnected socket fails with ENOTCONN. manualStart (how
  // Node's own child_process hands over sockets) skips the constructor's first read; connect() marks the socket
  // connecting at once, also while a name resolves (family fixed: the socket's), so reads wait for 'connect'.
  const opts: ConstructorParameters<typeof Socket>[0] & { manualStart: boolean } = { fd, manualStart: true };
  return new Socket(opts).connect({ host: t.host, port: t.port, family: chosen });
}

/**
 * A connection the way http(s).request's createConnection option wants it: TLS on top for https. The request's
 * timeout is set on the socket here, as the agent would (without an agent, nobody else does).
 */
export function bypassCreateConnection(
  tls: boolean,
): (opts: {
  host?: string | null;
  hostname?: string | null;
  port?: number | string | null;
  servername?: string;
  timeout?: number;
}) => Socket | TLSSocket {
  return (opts) => {
    const host = String(opts.hostname ?? opts.host ?? 'localhost').replace(/^\[|\]$/g, '');
    const port = Number(opts.port) || (tls ? 443 : 80);
    const sock = bypassConnect({ host, port });
    const out = tls
      ? tlsConnect({ socket: sock, host, ...(isIP(host) ? {} : { servername: opts.servername ?? host }) })
      : sock;
    if (typeof opts.timeout === 'number' && opts.timeout > 0) out.setTimeout(opts.timeout);
    return out;
  };
}
