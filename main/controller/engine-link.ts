// How the app reaches an engine: a `trellis daemon` already running on the machine (its socket; the GUI then
// needs no privileges), else an engine in a worker thread of this process — with a TUN when it may open one, else
// in userspace networking behind its SOCKS5 and HTTP proxies. When neither works the link is 'none' with a
// sentence telling the user what to do; opening a link never throws for that.
import type { EngineLinkKind } from '../../preload/api.ts';
import type { DataPathSettings } from '../engine/engine.ts';
import { EngineHost } from '../engine/host.ts';
import { connectDaemon } from '../engine/ipc/daemon-client.ts';
import type { EngineClient } from '../engine/ipc/rpc.ts';
import { loadAppPrefs } from './app-prefs.ts';

/** An engine of the app's own, as the link holds it. */
export interface WorkerEngine {
  readonly client: EngineClient;
  stop(): Promise<void>;
}

export interface EngineLinkOptions {
  /** The daemon's socket (or named pipe). */
  socketPath: string;
  /** State directory of a worker engine (unused when attaching to a daemon). */
  stateDir: string;
  /** TUN name of a worker engine; absent = 'trellis0'. */
  tunName?: string;
  /** WireGuard UDP port of a worker engine; absent = 41641. */
  port?: number;
  /** Only attach to a daemon, never start a worker (`trellis web`). */
  attachOnly?: boolean;
  /** How a worker engine reaches the tailnet; absent = 'tun'. The app asks for 'auto': the TUN when it may open
   *  one, else userspace networking. */
  networking?: DataPathSettings['networking'];
  /** A worker engine's proxies in userspace mode, "host:port"; absent or '' = none. */
  socks5Listen?: string;
  httpProxyListen?: string;
  /** Starts a worker engine; absent = a worker thread of this process (EngineHost). Tests pass their own. */
  startWorker?: (dataPath: DataPathSettings) => Promise<WorkerEngine>;
}

export interface EngineLink {
  readonly kind: EngineLinkKind;
  /** Present unless kind is 'none'. */
  readonly client?: EngineClient;
  /** Why there is no engine, as advice (kind 'none' only). */
  readonly problem?: string;
  /** Where the link goes, for messages: the socket path or "worker". */
  readonly where: string;
  /** Ends the link; a worker engine is shut down, a daemon keeps running. */
  close(): Promise<void>;
}

function daemonAdvice(socketPath: string): string {
  return (
    `No Trellis daemon is running at ${socketPath}. Start it as root with ` +
    '"trellis daemon --state-dir /var/lib/trellis" (the Linux packages install it as the trellis-daemon service).'
  );
}

export async function openEngineLink(o: EngineLinkOptions): Promise<EngineLink> {
  let daemonError: string | undefined;
  let client: EngineClient | undefined;
  try {
    client = await connectDaemon(o.socketPath);
    // The daemon started its engine with its own state directory; 'start' only reads the status there.
    await client.request('start', { stateDir: o.stateDir || '/' }, { timeoutMs: 15_000 });
    const attached = client;
    return { kind: 'daemon', client: attached, where: o.socketPath, close: async () => attached.close() };
  } catch (e) {
    client?.close();
    // No socket, or nothing listening on it: simply no daemon. Anything else (permissions, a daemon that does
    // not answer) is worth telling the user.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ECONNREFUSED') daemonError = (e as Error).message;
  }
  if (o.attachOnly) {
    return {
      kind: 'none',
      problem: daemonError ?? daemonAdvice(o.socketPath),
      where: o.socketPath,
      close: async () => {},
    };
  }
  let host: WorkerEngine | undefined;
  try {
    const dataPath = workerDataPath(o);
    host = await (o.startWorker ? o.startWorker(dataPath) : EngineHost.start({ dataPath }));
    await host.client.request('start', { stateDir: o.stateDir }, { timeoutMs: 60_000 });
    const started = host;
    return { kind: 'worker', client: started.client, where: 'worker', close: () => started.stop() };
  } catch (e) {
    await host?.stop();
    return {
      kind: 'none',
      problem: `The engine could not start: ${(e as Error).message}. ${daemonError ?? daemonAdvice(o.socketPath)}`,
      where: 'worker',
      close: async () => {},
    };
  }
}

/** The data path a worker engine is started with: the TUN's name and port, and in 'auto' or 'userspace' the
 *  proxies (empty addresses left out: that proxy is off). */
export function workerDataPath(o: EngineLinkOptions): DataPathSettings {
  const d: DataPathSettings = { tunName: o.tunName ?? 'trellis0', port: o.port ?? 41641 };
  if (o.networking === undefined || o.networking === 'tun') return d;
  d.networking = o.networking;
  if (o.socks5Listen) d.socks5Listen = o.socks5Listen;
  if (o.httpProxyListen) d.httpProxyListen = o.httpProxyListen;
  return d;
}

/** The desktop app's link: a daemon when one runs, else its own engine in 'auto' networking with the proxies the
 *  user set (read from the prefs file at each opening, so a changed address applies when the engine next starts). */
export async function openAppEngineLink(o: {
  socketPath: string;
  stateDir: string;
  prefsPath: string;
  tunName?: string;
  startWorker?: EngineLinkOptions['startWorker'];
}): Promise<EngineLink> {
  const prefs = await loadAppPrefs(o.prefsPath);
  return openEngineLink({
    socketPath: o.socketPath,
    stateDir: o.stateDir,
    tunName: o.tunName,
    networking: 'auto',
    socks5Listen: prefs.socks5Listen,
    httpProxyListen: prefs.httpProxyListen,
    startWorker: o.startWorker,
  });
}

/** A health message about the TUN that means "no privilege", rewritten as what the user should do. */
export function privilegeAdvice(message: string, platform: NodeJS.Platform = process.platform): string | undefined {
  // The engine's own sentence for it (tun/tun-port.ts) names root and CAP_NET_ADMIN; OS errors name the errno.
  if (!/EPERM|EACCES|not permitted|permission denied|access is denied|needs root|CAP_NET_ADMIN/i.test(message)) {
    return undefined;
  }
  const how =
    platform === 'win32'
      ? 'Run Trellis as administrator, or install the Trellis service.'
      : platform === 'darwin'
        ? 'Install the Trellis helper (it runs the engine as root), or start "sudo trellis daemon".'
        : 'Start the engine as root: "sudo trellis daemon --state-dir /var/lib/trellis" ' +
          '(the packages install it as the trellis-daemon service); the app attaches to it.';
  return `Trellis needs administrator rights to create its network interface. ${how}`;
}
