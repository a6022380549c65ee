// Connects the tailnet verbs (and the daemon's own already-running check) to the daemon's socket.
import { createConnection, type Socket } from 'node:net';
import { EngineClient, SocketTransport } from './rpc.ts';

export class DaemonUnavailableError extends Error {
  override readonly name = 'DaemonUnavailableError';
}

/** A sentence for a failed connect to the daemon at path. */
export function describeConnectError(e: NodeJS.ErrnoException, path: string): string {
  switch (e.code) {
    case 'ENOENT':
      return `trellis daemon is not running (no socket at ${path})`;
    case 'ECONNREFUSED':
      return `trellis daemon is not running (nothing listens on ${path})`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${path}: run this as root or as the user the daemon runs as`;
    default:
      return `cannot connect to the trellis daemon at ${path}: ${e.message}`;
  }
}

function connect(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DaemonUnavailableError(`the trellis daemon at ${path} did not accept a connection`));
    }, timeoutMs);
    const onError = (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      const err = new DaemonUnavailableError(describeConnectError(e, path));
      reject(Object.assign(err, { code: e.code }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** An EngineClient talking to the daemon at path; rejects with DaemonUnavailableError. */
export async function connectDaemon(path: string, timeoutMs = 5000): Promise<EngineClient> {
  return new EngineClient(new SocketTransport(await connect(path, timeoutMs)));
}

/** Whether a daemon answers at path: false when there is no socket or nothing listens on it. */
export async function daemonListening(path: string, timeoutMs = 2000): Promise<boolean> {
  try {
    (await connect(path, timeoutMs)).destroy();
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return false;
    throw e;
  }
}
