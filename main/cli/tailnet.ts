// `trellis up | down | logout | status`: the tailnet verbs. Each talks to `trellis daemon` over its socket.
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { connectDaemon } from '../engine/ipc/daemon-client.ts';
import { type EngineClient, RpcError } from '../engine/ipc/rpc.ts';
import type {
  CommandMap,
  CommandName,
  EngineState,
  NetworkingStatus,
  PeerSummary,
  StatusSnapshot,
} from '../engine/protocol.ts';
import { noMoreArgs, resolveSocketPath, takeOption, takeSwitch, UsageError } from './paths.ts';
import {
  exitNodeLine,
  forwardPortsLine,
  ROUTE_FLAGS_HELP,
  type RouteFlags,
  routeMarks,
  routePrefsOf,
  takeRouteFlags,
} from './route-flags.ts';

export type TailnetVerb = 'up' | 'down' | 'logout' | 'status';

export const TAILNET_USAGE: Record<TailnetVerb, string> = {
  up:
    'trellis up [--login-server URL] [--auth-key file:PATH|-] [--hostname NAME] [--accept-dns=true|false] ' +
    '[route flags, see trellis set --help] [--timeout SECONDS] [--socket PATH]',
  down: 'trellis down [--socket PATH]',
  logout: 'trellis logout [--socket PATH]',
  status: 'trellis status [--json] [--socket PATH]',
};

export const UP_HELP = `usage: ${TAILNET_USAGE.up}

  --login-server URL       the control server (Headscale, or Tailscale's); needed the first time
  --auth-key file:PATH     log in with the pre-auth key in this file (surrounding whitespace ignored)
  --auth-key -             log in with the key read from standard input, e.g. from a secrets manager
                           (a key given literally works too, but every user sees it in ps)
                           without --auth-key, up prints a login URL and waits for it to be approved
  --hostname NAME          this device's name on the tailnet (default: the OS host name)
  --accept-dns=true|false  point the OS resolver at MagicDNS while connected (default true)
  --admin-url URL          this account's admin console, for servers other than Tailscale's ('' = none)
  --timeout SECONDS        give up after this long (default 60 with a key, 600 without)
  --socket PATH            the daemon's socket (or TRELLIS_SOCKET)
${ROUTE_FLAGS_HELP}`;

/** Bytes of standard input read for --auth-key -; a key is some 100 characters. */
const MAX_STDIN_KEY = 4096;

/** Runs one verb; returns the exit code (2 = usage, 1 = failure). */
export async function runTailnet(verb: TailnetVerb, args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(verb === 'up' ? UP_HELP : `usage: ${TAILNET_USAGE[verb]}\n`);
    return 0;
  }
  try {
    const socket = resolveSocketPath(takeOption(args, '--socket'));
    if (verb === 'up') return await up(socket, args);
    if (verb === 'status') return await status(socket, args);
    noMoreArgs(args);
    return await withClient(socket, async (client) => {
      const snap = await client.request(verb, {});
      process.stdout.write(`${stateHeader(snap) ?? 'Running.'}\n`);
      return 0;
    });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`trellis ${verb}: ${e.message}\nusage: ${TAILNET_USAGE[verb]}\n`);
      return 2;
    }
    process.stderr.write(`trellis ${verb}: ${printable(e instanceof Error ? e.message : String(e))}\n`);
    return 1;
  }
}

export async function withClient(socket: string, f: (client: EngineClient) => Promise<number>): Promise<number> {
  const client = await connectDaemon(socket);
  try {
    return await f(client);
  } finally {
    client.close();
  }
}

async function status(socket: string, args: string[]): Promise<number> {
  const json = takeSwitch(args, '--json');
  noMoreArgs(args);
  return withClient(socket, async (client) => {
    const snap = await client.request('status', {});
    process.stdout.write(json ? `${JSON.stringify(snap, null, 2)}\n` : formatStatus(snap));
    return 0;
  });
}

export interface UpOptions {
  controlURL?: string;
  authKey?: string;
  hostname?: string;
  acceptDNS?: boolean;
  adminURL?: string;
  /** --exit-node and the other route flags (login takes none). */
  routes?: RouteFlags;
  timeoutMs: number;
}

async function up(socket: string, args: string[]): Promise<number> {
  const routes = takeRouteFlags(args);
  const o = { ...(await parseUpOptions(args)), routes };
  return withClient(socket, (client) => bringUp(client, o));
}

/** The options `up` and `login` share, taken out of args (anything left over is a usage error). */
export async function parseUpOptions(args: string[]): Promise<UpOptions> {
  const loginServer = takeOption(args, '--login-server');
  const authKeyArg = takeOption(args, '--auth-key');
  const hostname = takeOption(args, '--hostname');
  const timeout = takeOption(args, '--timeout');
  const acceptDNS = takeAcceptDns(args);
  const adminURL = takeOption(args, '--admin-url');
  if (adminURL) checkControlURL(adminURL, '--admin-url');
  noMoreArgs(args);
  if (loginServer !== undefined) checkControlURL(loginServer);
  const authKey = authKeyArg === undefined ? undefined : await readAuthKey(authKeyArg);
  let seconds = authKey ? 60 : 600;
  if (timeout !== undefined) {
    seconds = Number(timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError('--timeout needs a positive number of seconds');
  }
  const controlURL = loginServer?.replace(/\/+$/, '');
  return { controlURL, authKey, hostname, acceptDNS, adminURL, timeoutMs: seconds * 1000 };
}

/**
 * The key --auth-key names: 'file:PATH' reads it from a file, '-' from stdin (both trimmed); anything else is the
 * key itself, kept working as tailscale does, though `ps` shows it to every user. Throws one sentence.
 */
export async function readAuthKey(value: string, stdin: Readable = process.stdin): Promise<string> {
  let key: string;
  let from: string;
  if (value.startsWith('file:')) {
    const path = value.slice('file:'.length);
    if (path === '') throw new UsageError('--auth-key file: needs a path, as in file:/etc/trellis/auth.key');
    from = path;
    try {
      key = (await readFile(path, 'utf8')).trim();
    } catch (e) {
      throw new Error(`cannot read the auth key from ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  } else if (value === '-') {
    from = 'standard input';
    if ((stdin as { isTTY?: boolean }).isTTY) process.stderr.write('Auth key (then Enter and Ctrl-D): ');
    key = (await readLimited(stdin, MAX_STDIN_KEY)).trim();
  } else {
    from = '--auth-key';
    key = value.trim();
  }
  if (key === '') throw new UsageError(`no auth key in ${from}`);
  if (/\s/.test(key)) throw new UsageError(`${from} holds more than one word; an auth key is one`);
  return key;
}

async function readLimited(stream: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > max) throw new UsageError(`standard input holds over ${max} bytes, which is no auth key`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** --accept-dns, --accept-dns=true|false (point the OS resolver at MagicDNS while connected); undefined = unchanged. */
function takeAcceptDns(args: string[]): boolean | undefined {
  const i = args.findIndex((a) => a === '--accept-dns' || a.startsWith('--accept-dns='));
  if (i < 0) return undefined;
  const [arg = ''] = args.splice(i, 1);
  const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : 'true';
  if (value !== 'true' && value !== 'false') throw new UsageError('--accept-dns takes true or false');
  return value === 'true';
}

function checkControlURL(text: string, flag = '--login-server'): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${flag} must be an http:// or https:// URL`);
  }
}

/** Sets the prefs, logs in when needed, and waits for the engine's 'state' events to say Running. */
export async function bringUp(client: EngineClient, o: UpOptions): Promise<number> {
  const deadline = Date.now() + o.timeoutMs;
  let lastState: EngineState | undefined;
  let shownURL: string | undefined;
  let approvalNoted = false;
  let loginSent = false;
  let settle: (error?: Error) => void = () => {};
  const running = new Promise<void>((resolve, reject) => {
    settle = (e) => (e ? reject(e) : resolve());
  });
  running.catch(() => {}); // a failure before anyone awaits it is reported by the await below
  const timedOut = () =>
    new Error(
      `timed out after ${o.timeoutMs / 1000} s waiting for the node to come up (state ${lastState ?? 'unknown'})`,
    );
  const ask = <C extends CommandName>(cmd: C, args: CommandMap[C]['args']) =>
    client.request(cmd, args, { timeoutMs: Math.max(1, deadline - Date.now()) }).catch((e: unknown) => {
      throw e instanceof RpcError && e.kind === 'timeout' ? timedOut() : e;
    });

  const showURL = (url: string | undefined) => {
    if (!url || url === shownURL) return;
    shownURL = url;
    process.stdout.write(`\nTo authenticate, visit:\n\n\t${printable(url)}\n\n`);
  };
  const onState = (state: EngineState, reason: string | undefined) => {
    lastState = state;
    if (state === 'Running') settle();
    else if (state === 'NeedsMachineAuth' && !approvalNoted) {
      approvalNoted = true;
      process.stdout.write('Waiting for an admin of the tailnet to approve this machine...\n');
    } else if (state === 'NeedsLogin' && reason && loginSent) {
      // An error, unless it is an interactive login still waiting for the browser.
      void ask('status', {}).then(
        (s) => s.state === 'NeedsLogin' && !s.authURL && settle(new Error(s.reason ?? reason)),
        () => {},
      );
    }
  };
  const offEvents = client.on((e) => {
    if (e.event === 'state') onState(e.state, e.reason);
    else if (e.event === 'browseToURL') showURL(e.url);
  });
  const offClose = client.onClose(() => settle(new Error('lost the connection to the trellis daemon')));
  const timer = setTimeout(() => settle(timedOut()), o.timeoutMs);
  try {
    const before = await ask('status', {});
    if (!o.controlURL && !before.prefs.controlURL)
      throw new UsageError('--login-server is needed: no control server is set yet');
    const prefs: CommandMap['setPrefs']['args'] = { wantRunning: true };
    if (o.controlURL) prefs.controlURL = o.controlURL;
    if (o.hostname !== undefined) prefs.hostname = o.hostname;
    if (o.acceptDNS !== undefined) prefs.acceptDNS = o.acceptDNS;
    if (o.adminURL !== undefined) prefs.adminURL = o.adminURL;
    // Before the first netmap no peer is known: the exit node is looked up once the node runs (as tailscale
    // resolves an --exit-node IP when the netmap arrives).
    const laterExitNode = o.routes?.exitNode && before.peers.length === 0 ? o.routes.exitNode : undefined;
    if (o.routes)
      Object.assign(prefs, routePrefsOf({ ...o.routes, ...(laterExitNode ? { exitNode: undefined } : {}) }, before));
    await ask('setPrefs', prefs);
    let current = await ask('status', {});
    if (!o.authKey && current.state !== 'Running' && current.state !== 'NeedsLogin') current = await ask('up', {});
    if (o.authKey || current.state === 'NeedsLogin' || current.state === 'NeedsMachineAuth') {
      loginSent = true;
      await ask('login', o.authKey ? { authKey: o.authKey } : {});
    }
    // Events may have passed before we listened: look once more, then wait for them.
    const now = await ask('status', {});
    showURL(now.authURL);
    onState(now.state, now.reason);
    await running;
    if (laterExitNode) await chooseExitNodeOnceKnown(ask, laterExitNode, deadline);
    const done = await client.request('status', {}, { timeoutMs: 10_000 });
    const addresses = done.self?.addresses ?? [];
    process.stdout.write(`Running.${addresses.length > 0 ? ` Addresses: ${addresses.join(', ')}` : ''}\n`);
    return 0;
  } finally {
    clearTimeout(timer);
    offEvents();
    offClose();
  }
}

/** How long `up --exit-node` waits for the named peer to appear in the first netmap. */
const EXIT_NODE_WAIT_MS = 30_000;

/** Waits (bounded) for a netmap that names the exit node, then chooses it; one sentence if it never does. */
async function chooseExitNodeOnceKnown(
  ask: <C extends CommandName>(cmd: C, args: CommandMap[C]['args']) => Promise<CommandMap[C]['result']>,
  name: string,
  deadline: number,
): Promise<void> {
  const until = Math.min(deadline, Date.now() + EXIT_NODE_WAIT_MS);
  for (;;) {
    const s = await ask('status', {});
    try {
      await ask('setPrefs', routePrefsOf({ exitNode: name }, s));
      return;
    } catch (e) {
      if (!(e instanceof UsageError) || Date.now() >= until) {
        throw e instanceof UsageError ? new UsageError(`${e.message}; the node is up without an exit node`) : e;
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The line(s) describing a state other than Running; undefined when Running. */
export function stateHeader(s: StatusSnapshot): string | undefined {
  const because = s.reason ? `: ${printable(s.reason)}` : '';
  switch (s.state) {
    case 'Running':
      return undefined;
    case 'NoState':
      return 'The engine has not started.';
    case 'Stopped':
      return 'Stopped.';
    case 'Starting':
      return `Starting${because || '.'}`;
    case 'NeedsMachineAuth':
      return `NeedsMachineAuth${because || ': waiting for an admin of the tailnet to approve this machine'}`;
    case 'NeedsLogin': {
      const head = because ? `NeedsLogin${because}` : 'Logged out.';
      return s.authURL ? `${head}\nLog in at: ${printable(s.authURL)}` : head;
    }
  }
}

/** `tailscale status`-style text: state header unless Running, then self and peers in aligned columns. */
export function formatStatus(s: StatusSnapshot): string {
  const lines: string[] = [];
  const header = stateHeader(s);
  if (header) lines.push(header);
  if (s.self) {
    const self = [s.self.addresses[0] ?? '-', s.self.name || shortName(s.self.dnsName), s.self.user || '-', '-', '-'];
    const peers = [...s.peers].sort((a, b) => peerName(a).localeCompare(peerName(b)) || a.id - b.id);
    lines.push(...alignColumns([self, ...peers.map(peerRow)]));
  } else if (s.state === 'Running') {
    lines.push('Running; waiting for the network map.');
  }
  const exitNode = exitNodeLine(s);
  if (exitNode) lines.push('', printable(exitNode));
  const forwards = forwardPortsLine(s);
  if (forwards) lines.push('', printable(forwards));
  if (s.fileTargets && s.fileTargets.length > 0) {
    lines.push('', `# Taildrop targets (trellis file cp <file> <peer>:): ${s.fileTargets.map(printable).join(', ')}`);
  }
  if (s.networking?.mode === 'userspace') lines.push('', ...userspaceLines(s.networking));
  if (s.health.length > 0) {
    lines.push('', '# Health check:', ...s.health.map((h) => `#     - ${printable(h.message)}`));
  }
  // libsodium is the normal case and --json always says which AEAD runs; the text speaks up only for the slow one.
  if (s.crypto?.aead === 'noble') {
    const why = s.crypto.fallbackReason ? ` (${printable(s.crypto.fallbackReason)})` : '';
    lines.push('', `# Crypto: ChaCha20-Poly1305 from @noble/ciphers, the slower fallback${why}`);
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** Userspace networking: no network device, so apps reach the tailnet through the proxies it names. */
function userspaceLines(n: NetworkingStatus): string[] {
  const lines = ['# Userspace networking (no network device): apps reach the tailnet through a proxy.'];
  if (n.socks5) lines.push(`#     SOCKS5 proxy: ${printable(n.socks5)}`);
  if (n.httpProxy) lines.push(`#     HTTP proxy:   ${printable(n.httpProxy)}`);
  if (!n.socks5 && !n.httpProxy) lines.push('#     No proxy is running.');
  if (n.reason) lines.push(`#     Why: ${printable(n.reason)}`);
  return lines;
}

function peerRow(p: PeerSummary): string[] {
  const online = p.online === true ? 'online' : p.online === false ? 'offline' : '-';
  const shown = p.expired ? (online === '-' ? 'expired' : `${online}, expired`) : online;
  const row = [p.addresses[0] ?? '-', peerName(p), p.user || '-', p.os || '-', shown];
  const marks = routeMarks(p);
  if (p.path || marks) row.push([p.path ? pathText(p.path).trimEnd() : '', marks].filter(Boolean).join('; '));
  return row;
}

/** Like `tailscale status`: "direct ip:port", "relay "fra"" (the region's code; "derp-N" without one), with traffic counters once there is any. */
function pathText(path: NonNullable<PeerSummary['path']>): string {
  const via =
    path.via === 'direct'
      ? `direct ${path.endpoint ?? ''}`
      : path.via === 'derp'
        ? `relay "${path.derpRegionCode ?? `derp-${path.derpRegion}`}"`
        : '-';
  return path.rxBytes + path.txBytes > 0 ? `${via}, tx ${path.txBytes} rx ${path.rxBytes}` : via;
}

function peerName(p: PeerSummary): string {
  return p.name || shortName(p.dnsName);
}

function shortName(dnsName: string): string {
  return dnsName.split('.')[0] || '-';
}

/** Pads every column but the last to its widest cell; two spaces between columns. */
export function alignColumns(rows: string[][]): string[] {
  const cells = rows.map((r) => r.map(printable));
  const widths: number[] = [];
  for (const r of cells) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return cells.map((r) =>
    r
      .map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]) : c))
      .join('  ')
      .trimEnd(),
  );
}

/** Names and reasons come from the control server: never let them drive the terminal. */
export function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
