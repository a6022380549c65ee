// Dev aid only (loaded with ?fake=1): an in-memory TrellisApi with a made-up tailnet, so every view can be looked
// at without an engine. Options: state=Running|NeedsLogin|…, peers=N, shell=web, pending=1, nolink=1, health=1,
// expiring=1 (this device's key expires in 2 days), exit=NAME (that exit node chosen), routes=1 (this device
// offers two subnets, one approved), forwards=1 (two port forwards: 8080 and 2222→22),
// lag=MS (the snapshot after a setPrefs comes MS after its reply, 150 unless said; a long lag makes a window that
// computes a change from the snapshot it shows fail every time). Every fifth device offers an exit node, every seventh (from the fourth) two
// subnets; userspace=1: userspace networking (the notice and its proxies); choosing an exit node marks it in use, offline ones are held as the engine does. A control URL with "fail" or "down", or the auth key "bad",
// makes the login fail as a real one would.
// shell=web behaves as trellis web does: one save folder, and a call naming another is refused.

import { ForwardPortsError, formatForwardPorts, parseForwardPorts } from '../../../main/shared/forward-ports.ts';
import {
  ApiError,
  type ApiEventName,
  type ApiEvents,
  type AppPrefs,
  type AppSnapshot,
  type DroppedFile,
  type EngineState,
  type PeerView,
  type Transfer,
  type TrellisApi,
} from '../../../preload/api.ts';
import {
  checkListenAddress,
  DEFAULT_HTTP_PROXY_LISTEN,
  DEFAULT_SOCKS5_LISTEN,
} from '../../../preload/listen-address.ts';
import { checkRoutes } from '../../../preload/routes.ts';

const OSES = ['linux', 'windows', 'macOS', 'iOS', 'android'];
const REGIONS = ['New York City', 'Frankfurt', 'Singapore', 'São Paulo', 'Sydney'];
const NAMES = ['atlas', 'birch', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'iris', 'juniper', 'kestrel'];

function makePeers(n: number): PeerView[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const name = i < NAMES.length ? NAMES[i] : `node-${i}`;
    const online = i % 4 !== 3;
    const direct = i % 3 !== 2;
    return {
      id: 100 + i,
      name,
      dnsName: `${name}.example.ts.net`,
      addresses: [`100.64.0.${i + 2}`, `fd7a:115c:a1e0::${(i + 2).toString(16)}`],
      os: OSES[i % OSES.length],
      user: i % 2 ? 'alice@example.com' : 'bob@example.com',
      online,
      lastSeen: online ? undefined : new Date(now - (i + 1) * 3_700_000).toISOString(),
      keyExpiry: new Date(now + (i === 6 ? -86_400_000 : 90 * 86_400_000)).toISOString(),
      expired: i === 6,
      path: online
        ? {
            via: direct ? 'direct' : 'derp',
            endpoint: direct ? `192.168.1.${10 + i}:41641` : undefined,
            derpRegion: direct ? undefined : 1 + (i % 5),
            derpRegionName: direct ? undefined : REGIONS[i % 5],
            latencyMs: direct ? 2 + i : 40 + i,
            lastHandshake: Math.floor(now / 1000) - 30,
            rxBytes: 1_234_567 * (i + 1),
            txBytes: 765_432 * (i + 1),
          }
        : undefined,
      fileTarget: online && i % 5 !== 1,
      stableID: `n${(100 + i).toString(16)}CNTRL`,
      exitNodeOption: i % 5 === 0,
      routes: i % 7 === 3 ? [`10.${i % 256}.0.0/16`, `192.168.${i % 256}.0/24`] : [],
    };
  });
}

export function createFakeApi(params: URLSearchParams): TrellisApi {
  const web = params.get('shell') === 'web';
  const saveDir = web ? '/home/alice/Downloads' : undefined;
  const listeners = new Map<ApiEventName, Set<(p: never) => void>>();
  const prefs: AppPrefs = {
    controlURL: params.get('control') ?? '',
    hostname: '',
    acceptDNS: true,
    autoConnect: true,
    startAtLogin: false,
    startHidden: false,
    autoSaveDir: '',
    notifications: true,
    socks5Listen: DEFAULT_SOCKS5_LISTEN,
    httpProxyListen: DEFAULT_HTTP_PROXY_LISTEN,
    exitNodeID: '',
    lastExitNodeID: '',
    exitNodeAllowLANAccess: false,
    routeAll: false,
    advertiseExitNode: false,
    advertiseRoutes: params.get('routes') === '1' ? ['192.168.40.0/24', '10.40.0.0/16'] : [],
    forwardPorts: params.get('forwards') === '1' ? ['8080', '2222=22'] : [],
  };
  const peers = makePeers(Number(params.get('peers') ?? 24));
  /** What "control" approved of this device's offer: the first subnet and the exit node; later ones wait. */
  const approvedRoutes = new Set(['192.168.40.0/24', '0.0.0.0/0', '::/0']);
  const now = Date.now();
  let snap: AppSnapshot = {
    link: params.get('nolink') === '1' ? 'none' : 'worker',
    linkProblem:
      params.get('nolink') === '1' ? 'Run "sudo trellis daemon install" once, then reopen Trellis.' : undefined,
    state: (params.get('state') as EngineState | null) ?? 'Running',
    loggingIn: false,
    self: {
      id: 1,
      name: 'workstation',
      dnsName: 'workstation.example.ts.net',
      addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'],
      user: 'alice@example.com',
      keyExpiry: new Date(now + (params.get('expiring') === '1' ? 2 : 120) * 86_400_000).toISOString(),
    },
    peers,
    domain: 'example.ts.net',
    accounts: [
      {
        id: 'a1b2',
        controlURL: prefs.controlURL || 'https://controlplane.tailscale.com',
        loginName: 'alice@example.com',
        tailnet: 'example.ts.net',
        loggedIn: true,
        active: true,
        ...(/tailscale\.com/.test(prefs.controlURL || 'tailscale.com')
          ? { adminURL: 'https://login.tailscale.com/admin/machines' }
          : {}),
      },
    ],
    health:
      params.get('health') === '1'
        ? [{ code: 'control-unreachable', message: 'Cannot reach the control server.' }]
        : [],
    prefs,
    networking:
      params.get('userspace') === '1'
        ? {
            mode: 'userspace',
            socks5: prefs.socks5Listen,
            httpProxy: prefs.httpProxyListen,
            reason: 'Creating a network device needs administrator rights, which Trellis does not have.',
            fullModeAdvice:
              'For full mode, start the Trellis daemon as root ("sudo trellis daemon --state-dir /var/lib/trellis"), ' +
              'then restart Trellis.',
          }
        : params.get('nolink') === '1'
          ? undefined
          : { mode: 'tun' },
    transfers: [
      {
        id: 't1',
        peer: 'atlas',
        name: 'holiday-photos.zip',
        sent: 42e6,
        total: 120e6,
        bytesPerSecond: 11.3e6,
        state: 'sending',
        startedAt: now - 4000,
      },
      {
        id: 't2',
        peer: 'birch',
        name: 'notes.pdf',
        sent: 0,
        total: 2e6,
        bytesPerSecond: 0,
        state: 'queued',
        startedAt: now - 2000,
      },
      {
        id: 't3',
        peer: 'cedar',
        name: 'report.docx',
        sent: 1e6,
        total: 1e6,
        bytesPerSecond: 0,
        state: 'done',
        startedAt: now - 60_000,
      },
      {
        id: 't4',
        peer: 'delta',
        name: 'video.mp4',
        sent: 5e6,
        total: 80e6,
        bytesPerSecond: 0,
        state: 'failed',
        error: 'delta stopped answering for 20 s.',
        startedAt: now - 90_000,
      },
    ],
    received: [
      { name: 'screenshot.png', size: 340_000, modified: now - 120_000, where: 'inbox', from: 'ember' },
      {
        name: 'invoice-2024.pdf',
        size: 88_000,
        modified: now - 7_200_000,
        where: 'folder',
        path: '/home/alice/Downloads/invoice-2024.pdf',
        from: 'atlas',
      },
    ],
    pendingSend: params.get('pending') === '1' ? ['/home/alice/a.txt', '/home/alice/b.txt'] : [],
    capabilities: web
      ? { shell: 'web', openFiles: false, chooseFolder: false, autostart: false, saveDir }
      : { shell: 'electron', openFiles: true, chooseFolder: true, autostart: true },
  };

  const emit = <E extends ApiEventName>(event: E, payload: ApiEvents[E]): void => {
    for (const l of listeners.get(event) ?? []) (l as (p: ApiEvents[E]) => void)(payload);
  };
  /** A snapshot push is scheduled (after a setPrefs): changes until then go out with it, as the controller batches. */
  let pushPending = false;
  const update = (patch: Partial<AppSnapshot>): void => {
    snap = { ...snap, ...patch };
    if (!pushPending) emit('snapshot', snap);
  };
  const later = (ms: number, f: () => void): void => void setTimeout(f, ms);

  /** The snapshot's exit node and route offer after prefs changed, as the engine derives them. */
  const routeState = (p: AppPrefs): Partial<AppSnapshot> => {
    const chosen = snap.peers.find((x) => x.stableID === p.exitNodeID);
    const advertised = [...p.advertiseRoutes, ...(p.advertiseExitNode ? ['0.0.0.0/0', '::/0'] : [])];
    return {
      peers: snap.peers.map((x) => {
        const { exitNode: _, ...rest } = x;
        return x === chosen ? { ...rest, exitNode: true } : rest;
      }),
      exitNode: p.exitNodeID
        ? { id: p.exitNodeID, name: chosen?.name ?? p.exitNodeID, online: chosen?.online ?? null, active: !!chosen }
        : undefined,
      routes: { advertised, approved: advertised.filter((r) => approvedRoutes.has(r)) },
    };
  };
  const setRoutePrefs = (p: Partial<AppPrefs>): AppPrefs => {
    const next = { ...snap.prefs, ...p };
    if (p.advertiseRoutes !== undefined) {
      const checked = checkRoutes(p.advertiseRoutes);
      if ('error' in checked) throw new ApiError('bad-request', checked.error, { field: 'advertiseRoutes' });
      next.advertiseRoutes = checked.routes;
    }
    if (p.forwardPorts !== undefined) {
      // The engine's own parser and sentence.
      try {
        next.forwardPorts = formatForwardPorts(parseForwardPorts(p.forwardPorts));
      } catch (e) {
        if (e instanceof ForwardPortsError) throw new ApiError('bad-request', e.message);
        throw e;
      }
    }
    if (p.exitNodeID !== undefined && p.exitNodeID !== snap.prefs.exitNodeID) {
      const peer = snap.peers.find((x) => x.stableID === p.exitNodeID);
      if (p.exitNodeID && !peer?.exitNodeOption)
        throw new ApiError('bad-request', 'That device does not offer to be an exit node.', { field: 'exitNodeID' });
      if (snap.prefs.exitNodeID) next.lastExitNodeID = snap.prefs.exitNodeID;
    }
    snap = { ...snap, prefs: next };
    return next;
  };
  {
    const chosen = snap.peers.find((x) => x.name === params.get('exit'));
    if (chosen) setRoutePrefs({ exitNodeID: chosen.stableID });
    snap = { ...snap, ...routeState(snap.prefs) };
  }

  // Moves sending transfers along, so progress bars can be watched.
  setInterval(() => {
    if (!snap.transfers.some((t) => t.state === 'sending' || t.state === 'queued')) return;
    const transfers = snap.transfers.map((t): Transfer => {
      if (t.state === 'queued') return { ...t, state: 'sending' };
      if (t.state !== 'sending') return t;
      const sent = Math.min(t.total, t.sent + t.total / 40);
      return sent >= t.total
        ? { ...t, sent, state: 'done', bytesPerSecond: 0 }
        : { ...t, sent, bytesPerSecond: 9e6 + Math.random() * 4e6 };
    });
    update({ transfers });
  }, 500);

  const send = (peer: string, names: string[]): string[] => {
    if (!snap.peers.some((p) => p.name === peer && p.fileTarget))
      throw new ApiError('bad-request', `${peer} can't receive files.`);
    const added = names.map(
      (name, i): Transfer => ({
        id: `t${Date.now()}-${i}`,
        peer,
        name,
        sent: 0,
        total: 5e6,
        bytesPerSecond: 0,
        state: 'queued',
        startedAt: Date.now(),
      }),
    );
    update({ transfers: [...snap.transfers, ...added] });
    return added.map((t) => t.id);
  };

  const impl = {
    getSnapshot: async () => snap,
    connect: async () => {
      update({ state: 'Starting' });
      later(800, () => update({ state: 'Running' }));
    },
    disconnect: async () => update({ state: 'Stopped' }),
    login: async (req: { controlURL?: string; authKey?: string }) => {
      if (req.controlURL?.includes('down'))
        throw new ApiError('engine', 'Trellis could not reach that server — check the address and your network.', {
          field: 'controlURL',
          detail: 'login failed: cannot reach control server: connect ECONNREFUSED',
        });
      if (req.authKey === 'bad')
        throw new ApiError('engine', 'The server did not accept this auth key; check it or create a new one.', {
          field: 'authKey',
          detail: 'control server refused the auth key: control server answered 401 to /machine/register',
        });
      if (req.controlURL?.includes('fail')) throw new ApiError('engine', 'The control server refused the login.');
      update({ loggingIn: true, prefs: { ...snap.prefs, controlURL: req.controlURL ?? snap.prefs.controlURL } });
      if (!req.authKey) {
        later(600, () =>
          update({
            authURL: `${req.controlURL ?? 'https://login.example'}/register/nodekey:3f9a1c0e`,
            state: 'NeedsLogin',
          }),
        );
        await new Promise((r) => setTimeout(r, 6000));
      }
      update({ loggingIn: false, authURL: undefined, state: 'Running' });
    },
    logout: async () => update({ state: 'NeedsLogin' }),
    // Accounts: an added one is made active; switching and removing move the mark.
    addAccount: async (req: { controlURL?: string }) => {
      const id = Math.floor(Math.random() * 0xffff)
        .toString(16)
        .padStart(4, '0');
      const controlURL = req.controlURL ?? 'https://controlplane.tailscale.com';
      const others = (snap.accounts ?? []).map((a) => ({ ...a, active: false }));
      const added = { id, controlURL, loginName: 'new@example.com', tailnet: '', loggedIn: true, active: true };
      update({ accounts: [...others, added] });
    },
    switchAccount: async (id: string) =>
      update({ accounts: (snap.accounts ?? []).map((a) => ({ ...a, active: a.id === id })) }),
    removeAccount: async (id: string) => {
      const left = (snap.accounts ?? []).filter((a) => a.id !== id);
      update({ accounts: left.map((a, i) => ({ ...a, active: left.some((x) => x.active) ? a.active : i === 0 })) });
    },
    setPrefs: async (p: Partial<AppPrefs>) => {
      // As through the controller: the answer and the new snapshot come a moment after the call.
      await new Promise((r) => setTimeout(r, 120));
      if (p.hostname !== undefined && !/^[A-Za-z0-9-]{0,63}$/.test(p.hostname))
        throw new ApiError('bad-request', 'A device name has only letters, digits and dashes (at most 63).', {
          field: 'hostname',
        });
      if (saveDir && p.autoSaveDir !== undefined && p.autoSaveDir !== '' && p.autoSaveDir !== saveDir)
        throw new ApiError('refused', `From the browser, auto-save can only be turned on (to ${saveDir}) or off.`);
      for (const [k, what] of [
        ['socks5Listen', 'The SOCKS5 proxy'],
        ['httpProxyListen', 'The HTTP proxy'],
      ] as const) {
        const v = p[k];
        if (v === undefined) continue;
        const checked = checkListenAddress(v, what);
        if ('error' in checked) throw new ApiError('bad-request', checked.error, { field: k });
        p = { ...p, [k]: checked.address };
      }
      const next = setRoutePrefs(p);
      // As the app's own engine does once restarted: the proxies at their new addresses.
      const networking = snap.networking && {
        ...snap.networking,
        socks5: next.socks5Listen || undefined,
        httpProxy: next.httpProxyListen || undefined,
      };
      // As the controller does: the reply carries the new prefs at once, the snapshot follows a push interval
      // later (a window that computes its next change from the snapshot it shows would use the old prefs).
      const pushed = { prefs: next, ...routeState(next), networking };
      snap = { ...snap, ...pushed };
      if (!pushPending) {
        pushPending = true;
        later(Number(params.get('lag') ?? 150), () => {
          pushPending = false;
          emit('snapshot', snap);
        });
      }
      return next;
    },
    sendFiles: async (req: { peer: string; paths: string[] }) =>
      send(
        req.peer,
        req.paths.map((p) => p.split('/').pop() ?? p),
      ),
    cancelTransfer: async (id: string) =>
      update({ transfers: snap.transfers.map((t) => (t.id === id ? { ...t, state: 'cancelled' } : t)) }),
    clearTransfers: async () =>
      update({ transfers: snap.transfers.filter((t) => t.state === 'queued' || t.state === 'sending') }),
    saveReceived: async (req: { dir?: string; names?: string[] }) => {
      if (saveDir && req.dir !== undefined)
        throw new ApiError(
          'refused',
          'The browser cannot choose a folder; files are saved to the one trellis web set.',
        );
      const dir = req.dir ?? saveDir ?? snap.prefs.autoSaveDir;
      const saved: string[] = [];
      const received = snap.received.map((r) => {
        if (r.where !== 'inbox' || (req.names && !req.names.includes(r.name))) return r;
        saved.push(`${dir}/${r.name}`);
        return { ...r, where: 'folder' as const, path: `${dir}/${r.name}` };
      });
      update({ received });
      return saved;
    },
    openReceived: async () => emit('notice', { level: 'info', message: 'Opened (fake).' }),
    revealReceived: async () => emit('notice', { level: 'info', message: 'Revealed (fake).' }),
    chooseFolder: async () => '/home/alice/Taildrop',
    // Kept where a test can read what would be on the clipboard.
    copyText: async (text: string) => {
      const g = globalThis as { __copied?: string[] };
      g.__copied = [...(g.__copied ?? []), text];
    },
    openExternal: async () => {},
    dismissPendingSend: async () => update({ pendingSend: [] }),
    cancelLogin: async () => update({ authURL: undefined, loggingIn: false, state: 'NeedsLogin' }),
    sendDroppedFiles: async (
      peer: string,
      files: readonly DroppedFile[],
      onUpload?: (p: { loaded: number; total: number }) => void,
    ) => {
      // As the bridge does: the bytes travel first, in steps one can watch.
      const total = files.reduce((n, f) => n + f.size, 0);
      for (let step = 1; step <= 4; step++) {
        await new Promise((r) => setTimeout(r, 250));
        onUpload?.({ loaded: (total * step) / 4, total });
      }
      return send(
        peer,
        files.map((f) => f.name),
      );
    },
    on: <E extends ApiEventName>(event: E, listener: (payload: ApiEvents[E]) => void) => {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      const l = listener as (p: never) => void;
      set.add(l);
      return () => void set.delete(l);
    },
  };
  return impl as TrellisApi;
}
