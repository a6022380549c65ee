// `trellis daemon`: the engine as a service. The engine runs in a worker thread; the daemon serves the engine
// protocol on a local socket (0600 in a 0700 directory; a named pipe on Windows), proxying each client's
// requests to the engine and fanning the engine's events out to every client.
import { chmodSync, chownSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import type { DataPathSettings } from '../engine/engine.ts';
import { closeQuietly, DescriptorStash, peerUid } from '../engine/fdpass/handover.ts';
import { EngineHost } from '../engine/host.ts';
import { daemonListening } from '../engine/ipc/daemon-client.ts';
import { type EngineClient, SocketTransport, serveEngine } from '../engine/ipc/rpc.ts';
import type { CommandMap, CommandName, EngineApi, EngineEvent, RequestContext } from '../engine/protocol.ts';
import { parseListenAddress } from '../engine/services/userspace-proxies.ts';
import { noMoreArgs, resolveSocketPath, takeOption, UsageError } from './paths.ts';
import { prepareSocketDir } from './socket-dir.ts';

export const DAEMON_USAGE =
  'trellis daemon --state-dir DIR [--socket PATH] [--socket-group GROUP] [--tun NAME|off|userspace-networking]\n' +
  '               [--port UDP_PORT] [--socks5-server ADDR] [--outbound-http-proxy-listen ADDR]';
/** tailscaled's name for running without a TUN: the engine's own TCP/IP stack, no privilege needed. */
const USERSPACE = 'userspace-networking';
/** How long a socket client's request may wait for the engine (an interactive login takes minutes). */
const PROXY_TIMEOUT_MS = 10 * 60_000;
const isWindows = process.platform === 'win32';

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function runDaemon(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`usage: ${DAEMON_USAGE}\n`);
    return 0;
  }
  let stateDir: string | undefined;
  let socketPath: string;
  let dataPath: DataPathSettings | undefined;
  let socketGid: number | undefined;
  try {
    stateDir = takeOption(args, '--state-dir');
    const group = takeOption(args, '--socket-group');
    if (group !== undefined) {
      if (isWindows) throw new UsageError('--socket-group is for Unix sockets');
      socketGid = groupId(group);
      if (socketGid === undefined) throw new UsageError(`no such group ${group}`);
    }
    socketPath = resolveSocketPath(takeOption(args, '--socket'));
    const tun = takeOption(args, '--tun') ?? 'trellis0';
    const portText = takeOption(args, '--port') ?? '41641';
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--port must be 0-65535, got ${portText}`);
    if (tun !== 'off' && tun !== USERSPACE && !/^[A-Za-z0-9_.-]{1,15}$/.test(tun)) {
      throw new UsageError(`bad --tun name ${tun}`);
    }
    const socks5Listen = takeOption(args, '--socks5-server');
    const httpProxyListen = takeOption(args, '--outbound-http-proxy-listen');
    for (const [flag, value] of [
      ['--socks5-server', socks5Listen],
      ['--outbound-http-proxy-listen', httpProxyListen],
    ] as const) {
      if (value === undefined) continue;
      if (tun !== USERSPACE) throw new UsageError(`${flag} needs --tun ${USERSPACE}`);
      try {
        parseListenAddress(value, flag);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    dataPath =
      tun === 'off'
        ? undefined
        : tun === USERSPACE
          ? { tunName: tun, port, networking: 'userspace', socks5Listen, httpProxyListen }
          : { tunName: tun, port };
    noMoreArgs(args);
    if (!stateDir) throw new UsageError('--state-dir is required');
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`trellis daemon: ${e.message}\nusage: ${DAEMON_USAGE}\n`);
    return 2;
  }
  stateDir = resolve(stateDir);

  try {
    await prepareSocketPath(socketPath, socketGid);
  } catch (e) {
    log(`error: ${message(e)}`);
    return 1;
  }
  let host: EngineHost;
  try {
    host = await EngineHost.start({ dataPath });
  } catch (e) {
    log(`error: ${message(e)}`);
    return 1;
  }
  const offEvents = host.client.on(logEvent);
  try {
    const snap = await host.client.request('start', { stateDir }, { timeoutMs: 60_000 });
    log(`engine started (state directory ${stateDir}): ${snap.state}`);
  } catch (e) {
    log(`error: cannot start the engine: ${message(e)}`);
    await host.stop();
    return 1;
  }

  const connections = new Set<Socket>();
  // Connections arrive paused so a descriptor handover (fdpass/handover.ts) is told apart before libuv reads it.
  const stash = new DescriptorStash();
  const serve = (socket: Socket) => {
    const api = proxyApi(host.client, stash, peerUid(socket));
    serveEngine(api, new SocketTransport(socket), { log: (level, m) => log(`${level}: ${m}`) });
    socket.resume();
  };
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    stash.accept(socket, serve);
  });
  try {
    await listen(server, socketPath, socketGid);
  } catch (e) {
    log(`error: cannot listen on ${socketPath}: ${message(e)}`);
    await host.stop();
    return 1;
  }
  server.on('error', (e) => log(`error: ${message(e)}`));
  log(`listening on ${socketPath}`);

  const code = await new Promise<number>((done) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      log(`${signal}: stopping`);
      done(0);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    host.onExit((error) => {
      if (!error) return;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      log(`error: ${error.message}`);
      done(1);
    });
  });

  server.close();
  for (const c of connections) c.destroy();
  await host.stop();
  stash.close();
  offEvents();
  if (!isWindows) removeSocket(socketPath);
  log('stopped');
  return code;
}

/** Socket clients speak to the worker's engine. The daemon already started it with its own state directory,
 *  so a client's `start` only reads the status. A request's byte source and cancellation go through to the
 *  engine: its reads come back to the client that offered the bytes. callerUid: the connection's user (a file it
 *  handed over as a descriptor goes only to its own requests). */
export function proxyApi(client: EngineClient, stash: DescriptorStash, callerUid: number | undefined): EngineApi {
  return {
    handle<C extends CommandName>(
      cmd: C,
      args: CommandMap[C]['args'],
      ctx: RequestContext = {},
    ): Promise<CommandMap[C]['result']> {
      if (cmd === 'start') return client.request('status', {}) as Promise<CommandMap[C]['result']>;
      // A fileSend naming a handed-over descriptor: the engine gets the descriptor (and owns it from here on), and
      // the client's streamed source stays as it was, unused. The token never reaches the engine.
      let sourceFd: number | undefined;
      if (cmd === 'fileSend' && Object.hasOwn(args, 'fdToken')) {
        const { fdToken, ...rest } = args as Record<string, unknown>;
        args = rest as CommandMap[C]['args'];
        const kept = stash.take(fdToken, callerUid);
        // The file must hold at least the bytes announced: the engine reads only that many (a bound of its size).
        if (kept && ctx.source && kept.size >= ctx.source.size) sourceFd = kept.fd;
        else if (kept) closeQuietly(kept.fd);
      }
      // A send may take longer than any fixed bound on a slow link; the engine ends one that stalls (20 s).
      return client.request(cmd, args, {
        timeoutMs: cmd === 'fileSend' ? 0 : PROXY_TIMEOUT_MS,
        source: ctx.source,
        signal: ctx.signal,
        sourceFd,
      });
    },
    onEvent: (listener) => client.on(listener),
    close: async () => {},
  };
}

/** State changes reach the log through the engine's own 'log' events. */
function logEvent(e: EngineEvent): void {
  if (e.event === 'log') log(e.level === 'info' ? e.message : `${e.level}: ${e.message}`);
  else if (e.event === 'browseToURL') log('interactive login: waiting for the user to visit the login URL');
  else if (e.event === 'health') log(`health: ${e.health.map((h) => h.code).join(', ') || 'ok'}`);
}

/** Creates the socket's directory if missing (socket-dir.ts: an existing one is never changed), refuses a path
 *  where a daemon answers, removes a stale socket. */
async function prepareSocketPath(path: string, gid: number | undefined): Promise<void> {
  if (!isWindows) {
    const { warning } = prepareSocketDir(dirname(path), gid);
    if (warning) log(`warning: ${warning}`);
  }
  if (await daemonListening(path)) throw new Error(`another trellis daemon is already listening on ${path}`);
  if (isWindows) return;
  try {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  unlinkSync(path); // a daemon that died left it behind
  log(`removed the stale socket ${path}`);
}

/** Listens with a umask that keeps the socket owner-only from its first moment, then sets 0600 explicitly — or
 *  0660 for the group allowed to drive the daemon (--socket-group), such as the desktop app's users. */
function listen(server: Server, path: string, gid: number | undefined): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const oldMask = isWindows ? undefined : process.umask(0o177);
    const restore = () => {
      if (oldMask !== undefined) process.umask(oldMask);
    };
    server.once('error', (e) => {
      restore();
      reject(e);
    });
    server.listen(path, () => {
      restore();
      try {
        if (!isWindows && gid !== undefined) {
          chownSync(path, -1, gid);
          chmodSync(path, 0o660);
        } else if (!isWindows) chmodSync(path, 0o600);
        resolvePromise();
      } catch (e) {
        server.close();
        reject(e);
      }
    });
  });
}

/** A group's id from /etc/group (a numeric id is taken as is). */
export function groupId(group: string, groupFile = '/etc/group'): number | undefined {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
      const [name, , gid] = line.split(':');
      if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
    }
  } catch {}
  return undefined;
}

function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log(`warning: cannot remove ${path}: ${message(e)}`);
  }
}
