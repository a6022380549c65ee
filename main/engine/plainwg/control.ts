// The local control socket of a running `trellis wg up`: `trellis wg show` asks it for status.
// One JSON request line, one JSON reply line. Unix socket 0600 in a 0700 directory (named pipe on Windows).
import { chmodSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { TunnelStatus } from './tunnel.ts';

export class ControlError extends Error {
  override readonly name = 'ControlError';
}

export function runDir(): string {
  if (process.env.TRELLIS_RUN_DIR) return process.env.TRELLIS_RUN_DIR;
  return process.platform === 'darwin' ? '/var/run/trellis' : '/run/trellis';
}

export function socketPath(name: string): string {
  if (process.platform === 'win32') return `\\\\.\\pipe\\trellis-wg-${name}`;
  return join(runDir(), `wg-${name}.sock`);
}

/** Names of interfaces with a control socket. */
export function listInterfaces(): string[] {
  try {
    if (process.platform === 'win32') {
      return readdirSync('\\\\.\\pipe\\')
        .filter((f) => f.startsWith('trellis-wg-'))
        .map((f) => f.slice(11));
    }
    return readdirSync(runDir())
      .filter((f) => f.startsWith('wg-') && f.endsWith('.sock'))
      .map((f) => f.slice(3, -5))
      .sort();
  } catch {
    return [];
  }
}

export async function serveControl(name: string, status: () => TunnelStatus): Promise<Server> {
  const path = socketPath(name);
  if (process.platform !== 'win32') {
    mkdirSync(runDir(), { recursive: true, mode: 0o700 });
    chmodSync(runDir(), 0o700);
    if (
      await requestStatus(name).then(
        () => true,
        () => false,
      )
    ) {
      throw new ControlError(`interface ${name} is already managed by a running trellis`);
    }
    try {
      unlinkSync(path); // stale socket of a process that died
    } catch {}
  }
  const server = createServer((conn) => {
    conn.setTimeout(5000, () => conn.destroy());
    let buf = '';
    conn.on('data', (d) => {
      buf += d.toString('utf8');
      if (buf.length > 4096) return conn.destroy();
      if (!buf.includes('\n')) return;
      let reply: unknown;
      try {
        const req = JSON.parse(buf.slice(0, buf.indexOf('\n'))) as { cmd?: unknown };
        reply = req.cmd === 'show' ? { ok: true, status: status() } : { ok: false, error: 'unknown command' };
      } catch {
        reply = { ok: false, error: 'malformed request' };
      }
      conn.end(`${JSON.stringify(reply)}\n`);
    });
    conn.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  if (process.platform !== 'win32') chmodSync(path, 0o600);
  return server;
}

export function closeControl(server: Server, name: string): void {
  server.close();
  if (process.platform !== 'win32') {
    try {
      unlinkSync(socketPath(name));
    } catch {}
  }
}

export function requestStatus(name: string, timeoutMs = 3000): Promise<TunnelStatus> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socketPath(name));
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new ControlError(`interface ${name} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.on('connect', () => conn.write('{"cmd":"show"}\n'));
    conn.on('data', (d) => {
      buf += d.toString('utf8');
    });
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(buf) as { ok: boolean; status?: TunnelStatus; error?: string };
        if (reply.ok && reply.status) resolve(reply.status);
        else reject(new ControlError(reply.error ?? 'bad reply'));
      } catch {
        reject(new ControlError(`interface ${name} sent a malformed reply`));
      }
    });
    conn.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new ControlError(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `no running trellis interface named ${name}` : e.message,
        ),
      );
    });
  });
}
