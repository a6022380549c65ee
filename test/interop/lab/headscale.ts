import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Lab, Namespace } from './netns.ts';
import { delay, execCommand, ManagedProcess, withTimeout } from './proc.ts';
import { goBinary } from './tools.ts';

export const HEADSCALE_VERSION = 'v0.29.2';

/** Absolute path of headscale: PATH, then the Go bin directories; null if absent. */
export const headscaleBinary = (): string | null => goBinary('headscale');

// Make a Go-installed headscale visible on PATH for requireTools(t, ['headscale']).
headscaleBinary();

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };
export type YamlMap = { [key: string]: YamlValue };

export interface HeadscaleOptions {
  ns?: Namespace; // run inside this namespace (registered with ns.lab)
  lab?: Lab; // on the host: register with this lab (stopped, temp dir removed on lab teardown)
  listenAddr?: string; // host:port; default 127.0.0.1:<free port>, in a namespace 127.0.0.1:8080
  serverUrl?: string; // default http://<listenAddr>; set it when listening on a wildcard address
  baseDomain?: string; // MagicDNS base domain, default 'tailnet.test'
  policy?: Record<string, unknown>; // ACL policy → policy.json (policy.mode file); absent ⇒ allow-all
  /** Embedded DERP (region 999, STUN on a free UDP port), default true. false ⇒ a DERP map whose only region
   * points at 127.0.0.1:1 with STUN off (Headscale refuses an empty map): no usable relay. */
  derp?: boolean;
  stunAddr?: string; // embedded DERP's STUN; default <listen host>:<free UDP port>, in a namespace :3478
  /** More DERP regions (Headscale's derp.paths YAML "regions" map, e.g. standalone derpers), next to region 999. */
  derpRegions?: YamlMap;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  extraConfig?: YamlMap; // deep-merged over the generated config (objects merge, anything else replaces)
  startTimeoutMs?: number; // bound for the health wait; at most (and by default) 20 s
}

/** `id` is a JSON number in v0.29 (uint64); strings from v0.30 on. */
export interface HsUser {
  id: number | string;
  name: string;
}

/** Go's encoding/json of a protobuf Timestamp; the zero time is { seconds: -62135596800 }. */
export type HsTimestamp = { seconds?: number; nanos?: number };

/** One element of `nodes list -o json` in v0.29.2 (encoding/json of the protobuf: snake_case, omitempty, so
 * online=false and empty lists are absent; an empty list prints `null`). */
export interface HsNodeJson {
  id?: number | string;
  machine_key?: string;
  node_key?: string;
  disco_key?: string;
  ip_addresses?: string[];
  name?: string;
  user?: { id?: number | string; name?: string; created_at?: HsTimestamp };
  last_seen?: HsTimestamp;
  expiry?: HsTimestamp;
  created_at?: HsTimestamp;
  register_method?: number;
  given_name?: string;
  online?: boolean;
  approved_routes?: string[];
  available_routes?: string[];
  subnet_routes?: string[];
  tags?: string[];
}

export interface HsNode {
  id: number | string;
  name: string; // hostname the client reported
  givenName: string; // MagicDNS label assigned by Headscale (what renameNode changes)
  ipAddresses: string[];
  online: boolean;
  user: string; // owning user's name
  expiry: Date | null; // null: no expiry
  lastSeen: Date | null;
  machineKey: string;
  nodeKey: string;
  tags: string[];
  raw: HsNodeJson;
}

export interface AuthKeyOptions {
  reusable?: boolean;
  ephemeral?: boolean;
  expiration?: string; // Go duration, e.g. '24h' (Headscale's default is 1h)
  tags?: string[];
}

export interface Headscale {
  /** server_url, e.g. http://127.0.0.1:PORT */
  readonly url: string;
  readonly listenAddr: string;
  readonly configPath: string;
  readonly dir: string;
  /** The server's Noise (machine) public key, mkey:<hex>, as served on /key; kept across restarts. */
  readonly publicKey: string;
  /** The current serve process (replaced by restart()). */
  readonly process: ManagedProcess;
  /** `headscale -c <config> ...args` (in the namespace if any) → stdout; throws with stderr and server output. */
  cli(args: string[], timeoutMs?: number): Promise<string>;
  /** HTTP GET on listenAddr (from inside the namespace if any), e.g. '/key?v=113'. */
  get(urlPath: string): Promise<{ status: number; body: string }>;
  createUser(name: string): Promise<HsUser>;
  users(): Promise<HsUser[]>;
  /** user: numeric ID, HsUser or name (looked up). Resolves the key, hskey-auth-…. */
  createAuthKey(user: number | string | HsUser, opts?: AuthKeyOptions): Promise<string>;
  nodes(): Promise<HsNode[]>;
  /** Approves an interactive login: `auth register --auth-id <hskey-authreq-…> --user <name>`. */
  approve(authId: string, user: string): Promise<void>;
  /** `debug create-node`: a pending registration (random keys) for approve(); resolves its auth ID. */
  createPendingNode(name: string, user: string): Promise<string>;
  expireNode(id: number | string): Promise<void>;
  deleteNode(id: number | string): Promise<void>;
  renameNode(id: number | string, newName: string): Promise<void>;
  /** Output of this instance's serve processes, earlier ones first. */
  output(): string;
  /** Graceful stop (SIGTERM, SIGKILL after 3 s), then the temp dir (config, database, keys) is removed. Final. */
  stop(): Promise<void>;
  /** Stops (if running) and starts again with the same config, keys and database; waits until healthy. */
  restart(): Promise<void>;
  /** SIGKILL, keeping the state: restart() then recovers as after a crash. */
  kill(): Promise<void>;
}

const MAX_START_MS = 20_000;
const live = new Map<string, () => ManagedProcess | null>(); // dir → current process, for the exit hook
process.on('exit', () => {
  for (const [dir, proc] of live) {
    proc()?.signal('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

const isMap = (x: YamlValue | undefined): x is YamlMap => x !== null && typeof x === 'object' && !Array.isArray(x);

/** Block mappings; scalars and lists as JSON, which is valid YAML flow syntax. */
function toYaml(map: YamlMap, indent = ''): string {
  let out = '';
  for (const [k, v] of Object.entries(map)) {
    const key = /^\w+$/.test(k) ? k : JSON.stringify(k);
    out +=
      isMap(v) && Object.keys(v).length > 0
        ? `${indent}${key}:\n${toYaml(v, `${indent}  `)}`
        : `${indent}${key}: ${JSON.stringify(v)}\n`;
  }
  return out;
}

function merge(base: YamlMap, over: YamlMap): YamlMap {
  const out: YamlMap = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isMap(out[k]) && isMap(v) ? merge(out[k], v) : v;
  return out;
}

function freePort(kind: 'tcp' | 'udp', host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    if (kind === 'udp') {
      const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      sock.once('error', reject);
      sock.bind(0, host, () => {
        const { port } = sock.address();
        sock.close(() => resolve(port));
      });
      return;
    }
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const hostOf = (addr: string): string => /^\[?(.*?)\]?:\d+$/.exec(addr)?.[1] ?? '127.0.0.1';
const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

function toDate(t: HsTimestamp | undefined): Date | null {
  if (t?.seconds === undefined || t.seconds <= -62135596800) return null; // absent or Go's zero time
  return new Date(t.seconds * 1000 + Math.floor((t.nanos ?? 0) / 1e6));
}

/** mkey:<hex> of the Noise key file ("privkey:<hex>"), or '' while headscale has not written it yet. */
async function noisePublicKey(file: string): Promise<string> {
  const hex = /privkey:([0-9a-f]{64})/.exec(await readFile(file, 'utf8').catch(() => ''))?.[1];
  if (!hex) return '';
  const pkcs8 = Buffer.from(`302e020100300506032b656e04220420${hex}`, 'hex'); // X25519 PrivateKeyInfo
  const { x } = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({
    format: 'jwk',
  });
  return x ? `mkey:${Buffer.from(x, 'base64url').toString('hex')}` : '';
}

/** Parses `nodes list -o json` (which prints `null` for no nodes). */
export function parseNodes(json: string): HsNode[] {
  return ((JSON.parse(json.trim() || 'null') ?? []) as HsNodeJson[]).map((n) => ({
    id: n.id ?? 0,
    name: n.name ?? '',
    givenName: n.given_name ?? '',
    ipAddresses: n.ip_addresses ?? [],
    online: n.online ?? false,
    user: n.user?.name ?? '',
    expiry: toDate(n.expiry),
    lastSeen: toDate(n.last_seen),
    machineKey: n.machine_key ?? '',
    nodeKey: n.node_key ?? '',
    tags: n.tags ?? [],
    raw: n,
  }));
}

const HTTP_GET_JS =
  'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(async(r)=>process.stdout.write(JSON.stringify(' +
  '{status:r.status,body:await r.text()}))).catch((e)=>{console.error(String(e));process.exit(1)})';

export async function startHeadscale(opts: HeadscaleOptions = {}): Promise<Headscale> {
  const bin = headscaleBinary();
  if (!bin)
    throw new Error('headscale not found (PATH, $(go env GOPATH)/bin, /root/go/bin); run test/setup/prereqs.sh');
  const { ns } = opts;
  const lab = ns?.lab ?? opts.lab;
  if (lab?.isClosed) throw new Error('lab already cleaned up; not starting headscale');
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-hs-'));
  const at = (f: string) => path.join(dir, f);
  const configPath = at('config.yaml');
  const startMs = Math.min(opts.startTimeoutMs ?? MAX_START_MS, MAX_START_MS);
  const derp = opts.derp ?? true;
  let listenAddr = '';
  let url = '';
  let publicKey = '';
  let proc: ManagedProcess | null = null;
  let stopped = false;
  const earlier: string[] = [];
  const output = () => [...earlier, proc?.output() ?? ''].join('\n--- restarted ---\n');
  live.set(dir, () => proc);

  const writeConfig = async (): Promise<void> => {
    listenAddr = opts.listenAddr ?? (ns ? '127.0.0.1:8080' : `127.0.0.1:${await freePort('tcp', '127.0.0.1')}`);
    url = opts.serverUrl ?? `http://${listenAddr}`;
    const host = hostOf(listenAddr);
    const stun = opts.stunAddr ?? hostPort(host, ns ? 3478 : await freePort('udp', host));
    if (!derp) {
      const node = { name: '900a', regionid: 900, hostname: '127.0.0.1', ipv4: '127.0.0.1', stunport: -1, derpport: 1 };
      await writeFile(
        at('derp.yaml'),
        toYaml({ regions: { 900: { regionid: 900, regioncode: 'none', nodes: [node] } } }),
      );
    }
    if (opts.derpRegions) await writeFile(at('derp-extra.yaml'), toYaml({ regions: opts.derpRegions }));
    if (opts.policy) await writeFile(at('policy.json'), JSON.stringify(opts.policy, null, 2));
    const config: YamlMap = {
      server_url: url,
      listen_addr: listenAddr,
      metrics_listen_addr: '',
      grpc_listen_addr: '127.0.0.1:50443', // bound only with TLS or grpc_allow_insecure
      grpc_allow_insecure: false,
      noise: { private_key_path: at('noise_private.key') },
      prefixes: { v4: '100.64.0.0/10', v6: 'fd7a:115c:a1e0::/48', allocation: 'sequential' },
      derp: {
        server: {
          enabled: derp,
          region_id: 999,
          region_code: 'headscale',
          region_name: 'Headscale Embedded DERP',
          verify_clients: true,
          stun_listen_addr: stun,
          private_key_path: at('derp_server_private.key'),
          automatically_add_embedded_derp_region: true,
        },
        urls: [],
        paths: [...(derp ? [] : [at('derp.yaml')]), ...(opts.derpRegions ? [at('derp-extra.yaml')] : [])],
        auto_update_enabled: false,
        update_frequency: '24h',
      },
      disable_check_updates: true,
      database: { type: 'sqlite', sqlite: { path: at('db.sqlite'), write_ahead_log: true } },
      log: { level: opts.logLevel ?? 'info', format: 'text' },
      policy: { mode: 'file', path: opts.policy ? at('policy.json') : '' },
      dns: { magic_dns: true, base_domain: opts.baseDomain ?? 'tailnet.test', override_local_dns: false },
      unix_socket: at('headscale.sock'),
      unix_socket_permission: '0770',
    };
    await writeFile(configPath, toYaml(merge(config, opts.extraConfig ?? {})));
  };

  const get = async (urlPath: string): Promise<{ status: number; body: string }> => {
    // where it listens (server_url may name a host only clients resolve); a wildcard is reached via loopback
    const target = new URL(urlPath, `http://${listenAddr.replace(/^(0\.0\.0\.0|\[::\]):/, '127.0.0.1:')}`).toString();
    if (ns) return JSON.parse(await ns.exec([process.execPath, '-e', HTTP_GET_JS, target], { timeoutMs: 5_000 }));
    const r = await fetch(target, { signal: AbortSignal.timeout(2_000) });
    return { status: r.status, body: await r.text() };
  };

  const start = async (): Promise<void> => {
    if (lab?.isClosed || stopped) throw new Error('headscale stopped or lab cleaned up; not starting');
    if (proc) earlier.push(proc.output());
    const cmd = [bin, '-c', configPath, 'serve'];
    const label = `headscale ${listenAddr}`;
    const p = ns ? ns.spawn(cmd, { label }) : new ManagedProcess(bin, cmd.slice(1), { label });
    if (!ns) lab?.processes.push(p);
    proc = p;
    // Lab teardown stops the process; the temp dir goes with it.
    void p.exited.then(() => {
      if (lab?.isClosed && live.delete(dir)) rmSync(dir, { recursive: true, force: true });
    });
    // Healthy = /key serves *our* Noise key: a probe must not be answered by whatever else holds the port.
    const deadline = Date.now() + startMs;
    let last = '';
    while (Date.now() < deadline && !p.hasExited) {
      publicKey = await noisePublicKey(at('noise_private.key'));
      const r = await get('/key?v=113').catch((e: Error) => ({ status: 0, body: e.message.split('\n')[0] ?? '' }));
      if (r.status === 200 && publicKey && r.body.includes(publicKey) && !p.hasExited) return;
      last = `GET /key?v=113: ${r.status || ''} ${r.body.trim()}${publicKey ? ` (want ${publicKey})` : ''}`;
      await delay(100);
    }
    const why = p.hasExited ? `exited (${p.exitCode ?? p.exitSignal})` : `not healthy after ${startMs} ms (${last})`;
    throw new Error(`headscale at ${url} ${why}\n--- headscale output:\n${p.output()}`);
  };

  try {
    await writeConfig();
    for (let attempt = 1; ; attempt++) {
      try {
        await start();
        break;
      } catch (e) {
        // a port found by binding 0 can be taken before headscale binds it: pick new ones
        if (ns || opts.listenAddr || attempt >= 3 || !/address already in use/.test(output())) throw e;
        await writeConfig();
      }
    }
  } catch (e) {
    await (proc as ManagedProcess | null)?.stop();
    live.delete(dir);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }

  const cli = async (args: string[], timeoutMs = 15_000): Promise<string> => {
    const cmd = [bin, '-c', configPath, ...args];
    try {
      return await (ns ? ns.exec(cmd, { timeoutMs }) : execCommand(bin, cmd.slice(1), { timeoutMs }));
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- headscale output (tail):\n${output().slice(-4_000)}`);
    }
  };
  const users = async (): Promise<HsUser[]> => {
    const list = (JSON.parse((await cli(['users', 'list', '-o', 'json'])).trim() || 'null') ?? []) as HsUser[];
    return list.map(({ id, name }) => ({ id, name }));
  };
  const userId = async (user: number | string | HsUser): Promise<string> => {
    if (typeof user === 'object') return String(user.id);
    if (typeof user === 'number' || /^\d+$/.test(user)) return String(user);
    const u = (await users()).find((x) => x.name === user);
    if (!u) throw new Error(`headscale: no user named ${user}`);
    return String(u.id);
  };
  const nodeCmd = async (args: string[]) => void (await cli(['nodes', ...args]));

  return {
    url,
    listenAddr,
    publicKey,
    configPath,
    dir,
    get process() {
      if (!proc) throw new Error('headscale not started');
      return proc;
    },
    cli,
    get,
    users,
    async createUser(name) {
      const u = JSON.parse(await cli(['users', 'create', name, '-o', 'json'])) as Partial<HsUser>;
      if (u.id !== undefined && u.name) return { id: u.id, name: u.name };
      const listed = (await users()).find((x) => x.name === name);
      if (!listed) throw new Error(`headscale: user ${name} created but not listed`);
      return listed;
    },
    async createAuthKey(user, o = {}) {
      const args = ['preauthkeys', 'create', '--user', await userId(user), '-o', 'json'];
      if (o.reusable) args.push('--reusable');
      if (o.ephemeral) args.push('--ephemeral');
      if (o.expiration) args.push('--expiration', o.expiration);
      if (o.tags?.length) args.push('--tags', o.tags.join(','));
      const { key } = JSON.parse(await cli(args)) as { key?: string };
      if (!key) throw new Error('headscale: preauthkeys create printed no key');
      return key;
    },
    nodes: async () => parseNodes(await cli(['nodes', 'list', '-o', 'json'])),
    approve: async (authId, user) => void (await cli(['auth', 'register', '--auth-id', authId, '--user', user])),
    async createPendingNode(name, user) {
      const authId = `hskey-authreq-${randomBytes(18).toString('base64url')}`; // 14 + 24 characters
      await cli(['debug', 'create-node', '--name', name, '--user', user, '--key', authId]);
      return authId;
    },
    expireNode: (id) => nodeCmd(['expire', '--identifier', String(id)]),
    deleteNode: (id) => nodeCmd(['delete', '--identifier', String(id), '--force']),
    renameNode: (id, newName) => nodeCmd(['rename', '--identifier', String(id), newName]),
    output,
    async stop() {
      stopped = true;
      await proc?.stop();
      live.delete(dir);
      await rm(dir, { recursive: true, force: true });
    },
    async restart() {
      await proc?.stop();
      await start();
    },
    async kill() {
      proc?.signal('SIGKILL');
      if (proc) await withTimeout(proc.exited, 5_000);
    },
  };
}
