// Taildrop for the engine: the PeerAPI server on our tailnet addresses with the inbox behind it, who may send to
// us and whom we may send to (docs/protocol/services.md §2.1–§2.4: the same untagged user, file-sharing in our CapMap), sending
// with progress and cancel, and the received files. Sending and receiving each run in a thread of their own
// (send-thread.ts, receive-thread.ts); this file decides who may call, from the netmap, on the engine's thread.
import type { NetMap } from '../control/netmap.ts';
import type { TailNode } from '../control/tailcfg.ts';
import type { DohAccess } from '../dns/doh.ts';
import type { ByteSource } from '../protocol.ts';
import { Inbox, type ReceivedFile } from './inbox.ts';
import { invalidNameReason } from './names.ts';
import type { Caller, PeerApiStream } from './peerapi.ts';
import { type PeerApiPorts, ReceiveThread, ReceiveThreadError } from './receive-thread.ts';
import { type PeerConnector, type SendProgress, sendFile, sendFileWithRetry } from './send.ts';
import { SendThread } from './send-thread.ts';

/** Whether a peer, calling from one of its addresses, may use our DNS-over-HTTPS, and with which upstreams. */
export type DnsAccessCheck = (node: TailNode, ip: string) => DohAccess | undefined;

export const FILE_SHARING_CAP = 'https://tailscale.com/cap/file-sharing';
/** A partial untouched this long is abandoned: its sender would have resumed by now. */
export const PARTIAL_MAX_AGE_MS = 3600_000;
const SWEEP_INTERVAL_MS = 10 * 60_000;

export interface FileTarget {
  id: number;
  name: string;
  /** http://ip:port of its PeerAPI. */
  base: string;
  online: boolean;
}

export class TaildropError extends Error {
  override readonly name = 'TaildropError';
  constructor(
    readonly code: 'no-such-peer' | 'bad-request' | 'not-permitted' | 'failed',
    message: string,
  ) {
    super(message);
  }
}

export class Taildrop {
  readonly inbox: Inbox;
  private nm: NetMap | undefined;
  private readonly receiver: ReceiveThread;
  private listening = '';
  private listenChain: Promise<unknown> = Promise.resolve();
  /** Counts close() calls: a listen asked for before the latest close gives up. */
  private closes = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly sendThread: SendThread;

  constructor(
    stateDir: string,
    private readonly o: {
      log: (message: string) => void;
      onReceived: (file: { name: string; size: number; from: string }) => void;
      /** A replaced receive thread got other ports: they go to the data path's filter and to control. */
      onPortsChanged?: (ports: PeerApiPorts) => void;
      /** Tests only: the first receive thread dies as it starts. */
      failFirstReceiveThread?: boolean;
    },
  ) {
    this.inbox = new Inbox(stateDir);
    this.sendThread = new SendThread(o.log);
    this.receiver = new ReceiveThread({
      stateDir,
      log: o.log,
      onReceived: o.onReceived,
      onPortsChanged: (p) => o.onPortsChanged?.(p),
      failNextStart: o.failFirstReceiveThread,
    });
  }

  /** The callers' table from this netmap; `dns` says who may use the PeerAPI's DNS-over-HTTPS (default: nobody). */
  setNetMap(nm: NetMap, dns?: DnsAccessCheck): void {
    this.nm = nm;
    this.receiver.setCallers(callerTable(nm, dns), hasFileSharing(nm.self));
  }

  /** The receiving side, for status and tests. */
  get receiveThread(): ReceiveThread {
    return this.receiver;
  }

  /** How sends reach peers: an OS socket (undefined, the default) or, in userspace networking, the netstack. */
  connector: PeerConnector | undefined;

  /** PeerAPI ports for Hostinfo.Services (empty until listening). */
  services(): Array<{ Proto: string; Port: number }> {
    const out: Array<{ Proto: string; Port: number }> = [];
    const { v4, v6 } = this.receiver.ports;
    if (v4) out.push({ Proto: 'peerapi4', Port: v4 });
    if (v6) out.push({ Proto: 'peerapi6', Port: v6 });
    return out;
  }

  /**
   * Starts (or moves) the PeerAPI to these addresses; true when the advertised ports changed. withoutSockets
   * (userspace networking): on the engine's thread, connections come from the netstack through acceptConnection.
   */
  listen(addresses: string[], withoutSockets = false): Promise<boolean> {
    // One move at a time: two overlapping calls would both see the old key and both re-listen.
    const closes = this.closes;
    const next = this.listenChain.then(() => this.listenNow(addresses, withoutSockets, closes));
    this.listenChain = next.catch(() => undefined);
    return next;
  }

  private async listenNow(addresses: string[], withoutSockets: boolean, closes: number): Promise<boolean> {
    const key = `${withoutSockets ? 'stack:' : ''}${addresses.join(',')}`;
    if (key === this.listening) return false;
    await this.inbox.ensure();
    // close() since this listen was asked for (the data path went down): it must not bring the PeerAPI back. Past
    // this point the receive thread itself notices a close.
    if (closes !== this.closes) throw new ReceiveThreadError('closed', 'the PeerAPI was closed while it started');
    if (!this.sweeper) {
      void this.sweep();
      this.sweeper = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
      this.sweeper.unref?.();
    }
    this.listening = '';
    this.sendThread.start(); // ready before the first send, as the receiving side is before the first upload
    const bare = addresses.map((a) => a.split('/')[0] ?? a);
    if (withoutSockets) await this.receiver.listenWithoutSockets(bare);
    else await this.receiver.listen(bare);
    this.listening = key;
    return true;
  }

  /** A connection the netstack accepted on the PeerAPI's port (userspace networking). */
  acceptConnection(socket: PeerApiStream): void {
    this.receiver.acceptConnection(socket);
  }

  ports(): PeerApiPorts {
    return this.receiver.ports;
  }

  private async sweep(): Promise<void> {
    const removed = await this.inbox.sweepPartials(PARTIAL_MAX_AGE_MS).catch(() => []);
    if (removed.length > 0) this.o.log(`taildrop: removed ${removed.length} abandoned partial file(s)`);
  }

  close(): void {
    this.closes++;
    void this.sendThread.close();
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    void this.receiver.close();
    this.listening = '';
  }

  /** Peers we may send files to (§2.2), by name. */
  targets(): FileTarget[] {
    const nm = this.nm;
    const self = nm?.self;
    if (!nm || !self || !hasFileSharing(self)) return [];
    const own = (self.Addresses ?? []).map((a) => String(a));
    const have4 = own.some((a) => !a.includes(':'));
    const have6 = own.some((a) => a.includes(':'));
    const out: FileTarget[] = [];
    for (const p of nm.peers.values()) {
      if (!sameUntaggedUser(self, p) || p.Hostinfo?.OS === 'tvOS') continue;
      const port = (proto: string) => p.Hostinfo?.Services?.find((s) => s.Proto === proto)?.Port ?? 0;
      const addrs = (p.Addresses ?? []).map((a) => String(a).split('/')[0] ?? '');
      const v4 = addrs.find((a) => !a.includes(':'));
      const v6 = addrs.find((a) => a.includes(':'));
      const base =
        have4 && v4 && port('peerapi4')
          ? `http://${v4}:${port('peerapi4')}`
          : have6 && v6 && port('peerapi6')
            ? `http://[${v6}]:${port('peerapi6')}`
            : '';
      if (!base) continue;
      const name = typeof p.Name === 'string' ? p.Name.replace(/\.$/, '') : String(p.ID);
      out.push({ id: p.ID, name, base, online: p.Online === true });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Sends the caller's file to a target named by host name, MagicDNS name or tailnet address. */
  async send(o: {
    target: string;
    source: ByteSource;
    name: string;
    onProgress?: (p: SendProgress) => void;
    signal?: AbortSignal;
  }): Promise<{ target: string; name: string; total: number; resumedFrom: number }> {
    const want = o.target.replace(/\.$/, '').toLowerCase();
    const t = this.targets().find((x) => {
      const node = this.nm?.peers.get(x.id);
      const addrs = (node?.Addresses ?? []).map((a) => String(a).split('/')[0]);
      return x.name.toLowerCase() === want || x.name.split('.')[0]?.toLowerCase() === want || addrs.includes(want);
    });
    if (!t) throw new TaildropError('no-such-peer', `${o.target} is not a file target (same user, with a PeerAPI)`);
    const name = o.name;
    const bad = invalidNameReason(name);
    if (bad) throw new TaildropError('bad-request', `cannot send a file named ${JSON.stringify(name)}: ${bad}`);
    // Through the netstack (userspace networking) the bytes are on this thread anyway: no send thread then.
    const connect = this.connector;
    const r = await sendFileWithRetry(
      { base: t.base, source: o.source, name, onProgress: o.onProgress, signal: o.signal, connect },
      { log: this.o.log, send: connect ? sendFile : (x) => this.sendThread.send(x) },
    );
    this.o.log(`taildrop: sent ${name} (${r.total} bytes, ${r.resumedFrom} resumed) to ${t.name}`);
    return { target: t.name, name, ...r };
  }

  list(): Promise<ReceivedFile[]> {
    return this.inbox.list();
  }

  /** Up to length bytes of a received file from offset; the caller saves them where it wants, as itself. */
  read(name: string, offset: number, length: number): Promise<Uint8Array> {
    return this.inbox.read(name, offset, length);
  }

  /** Removes a received file (the caller saved it); false when there was none by that name. */
  remove(name: string): Promise<boolean> {
    return this.inbox.remove(name);
  }
}

/**
 * Each peer address with the peer holding it and whether it may send us files (the first peer, when two claim one).
 * Our own addresses are no callers: a connection from one comes from a process on this machine (any local user),
 * not from a peer WireGuard authenticated.
 */
export function callerTable(nm: NetMap, dns?: DnsAccessCheck): Map<string, Caller> {
  const out = new Map<string, Caller>();
  const self = nm.self;
  if (!self) return out;
  const addrs = (n: TailNode) =>
    (n.Addresses ?? []).filter((a): a is string => typeof a === 'string').map((a) => a.split('/')[0] ?? a);
  for (const node of nm.peers.values()) {
    const user = typeof node.User === 'number' ? nm.users.get(node.User) : undefined;
    const caller: Caller = {
      senderId: node.StableID || String(node.ID),
      name: typeof node.Name === 'string' ? node.Name.replace(/\.$/, '') : String(node.ID),
      mayFileSend: sameUntaggedUser(self, node),
      userName: user?.DisplayName || user?.LoginName || '',
      sameUser: typeof self.User === 'number' && self.User === node.User,
      sameUntaggedUser: sameUntaggedUser(self, node),
    };
    for (const ip of addrs(node)) {
      const access = dns?.(node, ip);
      if (!out.has(ip)) out.set(ip, access ? { ...caller, dns: access } : caller);
    }
  }
  for (const ip of addrs(self)) out.delete(ip);
  return out;
}

function hasFileSharing(self: TailNode | undefined): boolean {
  const caps = self?.CapMap;
  if (caps && typeof caps === 'object' && FILE_SHARING_CAP in caps) return true;
  const legacy = (self as { Capabilities?: unknown } | undefined)?.Capabilities;
  return Array.isArray(legacy) && legacy.includes(FILE_SHARING_CAP);
}

function sameUntaggedUser(self: TailNode, peer: TailNode): boolean {
  const tagged = (n: TailNode) => Array.isArray(n.Tags) && n.Tags.length > 0;
  return typeof self.User === 'number' && self.User === peer.User && !tagged(self) && !tagged(peer);
}
