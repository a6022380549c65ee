// How the app reaches an engine: a `trellis daemon` already running on the machine (its socket; the GUI then
// needs no privileges), else an engine in a worker thread of this process. When neither works the link is
// 'none' with a sentence telling the user what to do; opening a link never throws for that.
import type { EngineLinkKind } from '../../preload/api.ts';
import { EngineHost } from '../engine/host.ts';
import { connectDaemon } from '../engine/ipc/daemon-client.ts';
import type { EngineClient } from '../engine/ipc/rpc.ts';

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
  let host: EngineHost | undefined;
  try {
    host = await EngineHost.start({ dataPath: { tunName: o.tunName ?? 'trellis0', port: o.port ?? 41641 } });
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

/** A health message about the TUN that means "no privilege", rewritten as what the user should do. */
export function privilegeAdvice(message: string, platform: NodeJS.Platform = process.platform): string | undefined {
  if (!/EPERM|EACCES|not permitted|permission denied|access is denied/i.test(message)) return undefined;
  const how =
    platform === 'win32'
      ? 'Run Trellis as administrator, or install the Trellis service.'
      : platform === 'darwin'
        ? 'Install the Trellis helper (it runs the engine as root), or start "sudo trellis daemon".'
        : 'Start the engine as root: "sudo trellis daemon --state-dir /var/lib/trellis" ' +
          '(the packages install it as the trellis-daemon service); the app attaches to it.';
  return `Trellis needs administrator rights to create its network interface. ${how}`;
}
