// The userspace stack: whole IP packets in (deliver), whole IP packets out (the output callback). It demuxes TCP
// by 4-tuple to connections, SYNs to listeners, UDP to bound ports and answers ICMP echo. Connections are
// bounded in number (with TIME_WAIT recycled first) and half-open connections separately, against SYN floods.
import { isIP } from 'node:net';
import { fold, sum16 } from '../packet/checksum.ts';
import { formatAddress, parseAddress } from '../packet/ip.ts';
import { IPPROTO, PacketInfo, parsePacket } from '../packet/parse.ts';
import { type Clock, systemClock, TimerQueue } from './clock.ts';
import { addressKey, LastFlow } from './flow-cache.ts';
import { echoReply } from './icmp.ts';
import { StackMemory } from './memory.ts';
import { ReassemblyBudget } from './reassembly.ts';
import { buildResetFor, PacketScratch, packetBytes, parseTcp, TCP_FLAGS, type TcpSegment } from './segment.ts';
import { TcpConnection } from './tcp-conn.ts';
import { TcpListener } from './tcp-listener.ts';
import { TcpSocket } from './tcp-socket.ts';
import { DEFAULT_TCP_CONFIG, type DropCounters, type TcpConfig, TcpError, type TcpHost } from './tcp-types.ts';
import { buildUdpPacket, parseUdp, type UdpHost, UdpSocket } from './udp.ts';

export { TcpListener };

export interface NetStackOptions {
  /** This node's addresses (IPv4 and/or IPv6); packets to others are dropped. */
  addresses: readonly string[];
  /** Where outgoing IP packets go (the data path); a packet may be a view into a larger buffer (never transfer it). */
  output: (packet: Uint8Array) => void;
  clock?: Clock;
  tcp?: Partial<TcpConfig>;
  maxConnections?: number;
  maxHalfOpen?: number;
  /** Out-of-order bytes all connections may hold together (default 32 MiB). */
  maxReassemblyBytes?: number;
  /**
   * Bytes all TCP connections may hold together: send buffers, received data not yet read and out-of-order data
   * (default 64 MiB). Past it, new data is refused (windows close, writes wait) and new connections are reset;
   * each connection may still hold 4 segments of received data, so that two full stacks cannot deadlock.
   */
  maxBufferedBytes?: number;
  /**
   * output() is done with each packet when it returns (it copies what it keeps, as the WireGuard path does, and
   * never makes the stack send from inside it): the stack then builds its TCP segments in one reused buffer.
   */
  outputCopies?: boolean;
  /** 32-bit random numbers for initial sequence numbers and ephemeral ports. */
  random32?: () => number;
}

const cryptoRandom32 = (): number => crypto.getRandomValues(new Uint32Array(1))[0];

export class NetStack implements UdpHost {
  readonly config: TcpConfig;
  readonly timers: TimerQueue;
  readonly reassemblyBudget: ReassemblyBudget;
  readonly memory: StackMemory;
  readonly drops: DropCounters = {};
  readonly counters = { packetsIn: 0, packetsOut: 0, echoReplies: 0 };
  private readonly clock: Clock;
  private readonly output: (packet: Uint8Array) => void;
  private readonly random32: () => number;
  private readonly maxConnections: number;
  private readonly maxHalfOpen: number;
  private readonly local = new Map<string, Uint8Array>();
  private v4: Uint8Array | undefined;
  private v6: Uint8Array | undefined;
  private readonly conns = new Map<string, TcpConnection>();
  private readonly halfOpen = new Set<string>();
  private readonly listeners = new Map<number, TcpListener>();
  private readonly udp = new Map<number, UdpSocket>();
  private readonly info = new PacketInfo();
  private readonly lastFlow = new LastFlow();
  private readonly host: TcpHost;

  constructor(o: NetStackOptions) {
    this.clock = o.clock ?? systemClock;
    this.output = o.output;
    this.random32 = o.random32 ?? cryptoRandom32;
    this.config = { ...DEFAULT_TCP_CONFIG, ...o.tcp };
    this.maxConnections = o.maxConnections ?? 4096;
    this.maxHalfOpen = o.maxHalfOpen ?? 256;
    this.timers = new TimerQueue(this.clock);
    this.reassemblyBudget = new ReassemblyBudget(o.maxReassemblyBytes ?? 32 * 1024 * 1024);
    this.memory = new StackMemory(o.maxBufferedBytes ?? 64 * 1024 * 1024);
    this.setAddresses(o.addresses);
    this.host = {
      config: this.config,
      reassemblyBudget: this.reassemblyBudget,
      memory: this.memory,
      timers: this.timers,
      now: () => this.clock.now(),
      emit: (p) => this.emit(p),
      packetBytes: o.outputCopies ? new PacketScratch(Math.max(this.config.mtu, 1500)).bytes : packetBytes,
      drop: (r) => this.drop(r),
      release: (key) => {
        this.lastFlow.forget(key);
        this.conns.delete(key);
        this.halfOpen.delete(key);
      },
      established: (key) => this.onEstablished(key),
    };
  }

  setAddresses(addresses: readonly string[]): void {
    this.lastFlow.forget();
    this.local.clear();
    this.v4 = this.v6 = undefined;
    for (const a of addresses) {
      const b = parseAddress(a);
      this.local.set(addressKey(b), b);
      if (b.length === 4) this.v4 ??= b;
      else this.v6 ??= b;
    }
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Out-of-order bytes held by all connections. */
  get reassemblyBytes(): number {
    return this.reassemblyBudget.used;
  }

  get halfOpenCount(): number {
    return this.halfOpen.size;
  }

  /** Bytes held by all connections: send buffers, received data not yet read by the apps, out-of-order data. */
  get bufferedBytes(): number {
    return this.memory.used;
  }

  /** Connections by state, for diagnostics and tests. */
  states(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.conns.values()) out[c.state] = (out[c.state] ?? 0) + 1;
    return out;
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  private emit(packet: Uint8Array): void {
    this.counters.packetsOut++;
    this.output(packet);
  }

  /** One IP packet from the data path. Never throws on hostile input: drops are counted by reason. */
  deliver(input: Uint8Array): void {
    this.counters.packetsIn++;
    // A plain Uint8Array view: Buffer.slice() does not copy, and the data path reuses its buffers after this call.
    const packet = Buffer.isBuffer(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength) : input;
    // RFC 1122 §3.2.1.2: a damaged IPv4 header (its own checksum) is dropped before any field of it is believed.
    const ihl = (packet[0] & 0x0f) << 2;
    if (packet[0] >> 4 === 4 && ihl >= 20 && ihl <= packet.length && fold(sum16(packet, 0, ihl)) !== 0xffff) {
      this.drop('bad-ip-checksum');
      return;
    }
    const info = parsePacket(packet, this.info);
    if (info.status !== 'ok') {
      this.drop(info.error || 'empty');
      return;
    }
    if (info.fragment || info.moreFragments) {
      this.drop('fragment');
      return;
    }
    const v4 = info.version === 4;
    const t = packet.subarray(info.transportOffset, info.transportOffset + info.transportLength);
    const flow =
      info.proto === IPPROTO.TCP && t.length >= 4 ? this.lastFlow.match(packet, info.transportOffset, v4) : undefined;
    if (flow) {
      const seg = parseTcp(t, flow.ep.remoteAddr, flow.ep.localAddr);
      if (typeof seg === 'string') this.drop(seg);
      else flow.input(seg);
      return;
    }
    const src = packet.slice(v4 ? 12 : 8, v4 ? 16 : 24);
    const dstKey = addressKey(packet.subarray(v4 ? 16 : 24, v4 ? 20 : 40));
    const dst = this.local.get(dstKey);
    if (!dst) {
      this.drop('not-local');
      return;
    }
    switch (info.proto) {
      case IPPROTO.TCP:
        this.tcpInput(t, src, dst, dstKey);
        return;
      case IPPROTO.UDP:
        this.udpInput(t, src, dst);
        return;
      case IPPROTO.ICMP:
      case IPPROTO.ICMPV6: {
        if ((info.proto === IPPROTO.ICMP) !== v4) {
          this.drop('icmp-family');
          return;
        }
        const reply = echoReply(t, src, dst);
        if (typeof reply === 'string') {
          this.drop(reply);
          return;
        }
        this.counters.echoReplies++;
        this.emit(reply);
        return;
      }
      default:
        this.drop('protocol');
        return;
    }
  }

  private tcpInput(t: Uint8Array, src: Uint8Array, dst: Uint8Array, dstKey: string): void {
    const seg = parseTcp(t, src, dst);
    if (typeof seg === 'string') {
      this.drop(seg);
      return;
    }
    const key = `${addressKey(src)}|${seg.srcPort}|${dstKey}|${seg.dstPort}`;
    const conn = this.conns.get(key);
    if (conn) {
      this.lastFlow.conn = conn;
      conn.input(seg);
      return;
    }
    const { SYN, ACK, RST } = TCP_FLAGS;
    if (seg.flags & RST) {
      this.drop('rst-no-connection');
      return;
    }
    if ((seg.flags & (SYN | ACK)) !== SYN) {
      this.drop('no-connection');
      this.reset(src, dst, seg);
      return;
    }
    const listener = this.listeners.get(seg.dstPort);
    if (!listener) {
      this.drop('no-listener');
      this.reset(src, dst, seg);
      return;
    }
    if (this.halfOpen.size >= this.maxHalfOpen) {
      this.drop('syn-backlog-full');
      return;
    }
    if (this.memory.exhausted) {
      // No memory for another connection's buffers: refuse it plainly rather than let it hang.
      this.drop('memory-full-syn');
      this.reset(src, dst, seg);
      return;
    }
    if (this.conns.size >= this.maxConnections && !this.recycleTimeWait()) {
      this.drop('too-many-connections');
      return;
    }
    const c = new TcpConnection(
      this.host,
      key,
      { localAddr: dst, localPort: seg.dstPort, remoteAddr: src, remotePort: seg.srcPort },
      this.random32(),
      true,
    );
    this.conns.set(key, c);
    this.halfOpen.add(key);
    c.acceptSyn(seg);
  }

  /** RST for a segment that has no connection (RFC 9293 §3.10.7.1). */
  private reset(src: Uint8Array, dst: Uint8Array, seg: TcpSegment): void {
    this.emit(buildResetFor(src, dst, seg));
  }

  /** Frees the oldest TIME_WAIT connection to make room; false when there is none. */
  private recycleTimeWait(): boolean {
    for (const c of this.conns.values()) {
      if (c.state === 'TIME_WAIT') {
        c.close();
        return true;
      }
    }
    return false;
  }

  private onEstablished(key: string): void {
    this.halfOpen.delete(key);
    const c = this.conns.get(key);
    const listener = c && this.listeners.get(c.ep.localPort);
    if (!c || !listener) {
      c?.abort();
      return;
    }
    listener.emit('connection', this.socketFor(c, false));
  }

  private socketFor(c: TcpConnection, connecting: boolean): TcpSocket {
    return new TcpSocket(
      c,
      {
        localAddress: formatAddress(c.ep.localAddr),
        localPort: c.ep.localPort,
        remoteAddress: formatAddress(c.ep.remoteAddr),
        remotePort: c.ep.remotePort,
      },
      connecting,
      this.config.rcvBuf,
    );
  }

  /** Accepts TCP connections to `port` on any of our addresses. */
  listen(port: number, onConnection?: (socket: TcpSocket) => void): TcpListener {
    if (this.listeners.has(port)) throw new TcpError('EADDRINUSE', `TCP port ${port} is already listening`);
    const l = new TcpListener(port, () => {
      if (this.listeners.get(port) === l) this.listeners.delete(port);
    });
    if (onConnection) l.on('connection', onConnection);
    this.listeners.set(port, l);
    return l;
  }

  /** Opens a TCP connection to address:port; the socket emits 'connect' or 'error'. */
  connect(address: string, port: number): TcpSocket {
    const family = isIP(address);
    const local = family === 4 ? this.v4 : family === 6 ? this.v6 : undefined;
    if (!local || !(port > 0 && port < 65536)) {
      throw new TcpError('ENETUNREACH', `no route from this node to ${address} port ${port}`);
    }
    if (this.conns.size >= this.maxConnections && !this.recycleTimeWait()) {
      throw new TcpError('EMFILE', 'too many TCP connections are open');
    }
    const remote = parseAddress(address);
    const rk = addressKey(remote);
    const lk = addressKey(local);
    for (let i = 0; i < 64; i++) {
      const lport = 49152 + (this.random32() % 16384);
      const key = `${rk}|${port}|${lk}|${lport}`;
      if (this.conns.has(key)) continue;
      const c = new TcpConnection(
        this.host,
        key,
        { localAddr: local, localPort: lport, remoteAddr: remote, remotePort: port },
        this.random32(),
        false,
      );
      this.conns.set(key, c);
      const socket = this.socketFor(c, true);
      c.connect();
      return socket;
    }
    throw new TcpError('EADDRINUSE', `no free local port for a connection to ${address} port ${port}`);
  }

  /** Binds a UDP port (0 picks an ephemeral one). */
  bindUdp(port = 0): UdpSocket {
    let p = port;
    for (let i = 0; p === 0 && i < 64; i++) {
      const c = 49152 + (this.random32() % 16384);
      if (!this.udp.has(c)) p = c;
    }
    if (p === 0 || this.udp.has(p)) throw new TcpError('EADDRINUSE', `UDP port ${port} is in use`);
    const s = new UdpSocket(this, p);
    this.udp.set(p, s);
    return s;
  }

  unbindUdp(port: number, socket: UdpSocket): void {
    if (this.udp.get(port) === socket) this.udp.delete(port);
  }

  sendUdp(from: { port: number }, address: string, port: number, data: Uint8Array): void {
    const dst = parseAddress(address);
    const src = dst.length === 4 ? this.v4 : this.v6;
    if (!src) throw new TcpError('ENETUNREACH', `this node has no address to reach ${address}`);
    this.emit(buildUdpPacket(src, dst, from.port, port, data));
  }

  private udpInput(t: Uint8Array, src: Uint8Array, dst: Uint8Array): void {
    const d = parseUdp(t, src, dst);
    if (typeof d === 'string') {
      this.drop(d);
      return;
    }
    const s = this.udp.get(d.dstPort);
    if (!s) {
      this.drop('udp-no-socket');
      return;
    }
    s.receive(d.payload, {
      address: formatAddress(src),
      port: d.srcPort,
      family: src.length === 4 ? 'IPv4' : 'IPv6',
      size: d.payload.length,
    });
    void dst;
  }

  /** Resets every connection (their sockets get an ECONNABORTED error) and closes every port. */
  close(): void {
    const err = new TcpError('ECONNABORTED', 'the userspace network stack was shut down');
    for (const c of [...this.conns.values()]) c.abortWith(err);
    for (const l of [...this.listeners.values()]) l.close();
    for (const s of [...this.udp.values()]) s.close();
  }
}
