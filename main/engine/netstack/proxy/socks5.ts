// SOCKS5 server (RFC 1928) for userspace networking: CONNECT to IPv4, IPv6 and domain-name targets (names via the
// injected resolver), UDP ASSOCIATE through an injected UDP endpoint, no authentication for loopback clients and
// optional username/password (RFC 1929). Handshakes are bounded in size and time; failures get a SOCKS reply code.
import { timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket as DgramSocket, type RemoteInfo } from 'node:dgram';
import { isIP, type Socket } from 'node:net';
import { parseAddress } from '../../packet/ip.ts';
import {
  type Dialer,
  type DialFailure,
  dialTarget,
  HandshakeReader,
  ProxyDialError,
  type Resolver,
  splice,
} from './dial.ts';
import { ProxyListener } from './listener.ts';

/** A UDP port on the tailnet side (the netstack's UdpSocket fits). */
export interface UdpEndpoint {
  send(data: Uint8Array, port: number, address: string): void;
  on(event: 'message', listener: (data: Buffer, remote: { address: string; port: number }) => void): unknown;
  close(): void;
}

export interface Socks5Options {
  dial: Dialer;
  resolve?: Resolver;
  /** Opens a tailnet UDP port for one UDP ASSOCIATE; without it the command is refused. */
  openUdp?: () => UdpEndpoint;
  /** When set, clients must authenticate with these (RFC 1929); otherwise only loopback clients are served. */
  credentials?: { username: string; password: string };
  handshakeTimeoutMs?: number;
  dialTimeoutMs?: number;
  maxClients?: number;
  /** Told of every failed dial (the client only gets a reply code). */
  onDialFailure?: (e: ProxyDialError) => void;
}

const REPLY = {
  ok: 0,
  failure: 1,
  notAllowed: 2,
  netUnreachable: 3,
  hostUnreachable: 4,
  refused: 5,
  ttl: 6,
  badCommand: 7,
  badAddress: 8,
} as const;
const FAILURE_REPLY: Record<DialFailure, number> = {
  resolve: REPLY.hostUnreachable,
  refused: REPLY.refused,
  timeout: REPLY.ttl,
  unreachable: REPLY.netUnreachable,
  failed: REPLY.failure,
};

class SocksError extends Error {
  constructor(
    readonly reply: number,
    message: string,
  ) {
    super(message);
  }
}

function isLoopback(address: string | undefined): boolean {
  return !!address && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The ATYP + address + port encoding (RFC 1928 §5) of an IP address. */
export function encodeAddress(address: string, port: number): Buffer {
  const kind = isIP(address);
  const bytes = kind ? parseAddress(address) : new Uint8Array(4);
  const out = Buffer.alloc(1 + bytes.length + 2);
  out[0] = bytes.length === 4 ? 1 : 4;
  out.set(bytes, 1);
  out.writeUInt16BE(port, 1 + bytes.length);
  return out;
}

/** Decodes ATYP + address + port at `off`; returns the host text, port and bytes used, or undefined if short. */
export function decodeAddress(b: Uint8Array, off: number): { host: string; port: number; used: number } | undefined {
  const atyp = b[off];
  let len: number;
  let host: string;
  if (atyp === 1) {
    len = 4;
    if (b.length < off + 1 + len + 2) return undefined;
    host = Array.from(b.subarray(off + 1, off + 5)).join('.');
  } else if (atyp === 4) {
    len = 16;
    if (b.length < off + 1 + len + 2) return undefined;
    const g: string[] = [];
    for (let i = 0; i < 16; i += 2) g.push(((b[off + 1 + i] << 8) | b[off + 2 + i]).toString(16));
    host = g.join(':');
  } else if (atyp === 3) {
    if (b.length < off + 2) return undefined;
    const n = b[off + 1];
    len = 1 + n;
    if (b.length < off + 1 + len + 2) return undefined;
    host = Buffer.from(b.subarray(off + 2, off + 2 + n)).toString('latin1');
  } else {
    throw new SocksError(REPLY.badAddress, `address type ${atyp} is not supported`);
  }
  const p = off + 1 + len;
  return { host, port: (b[p] << 8) | b[p + 1], used: 1 + len + 2 };
}

export class Socks5Server extends ProxyListener {
  private readonly opts: Required<Pick<Socks5Options, 'handshakeTimeoutMs' | 'dialTimeoutMs'>> & Socks5Options;

  constructor(options: Socks5Options) {
    super(options.maxClients);
    this.opts = { handshakeTimeoutMs: 10_000, dialTimeoutMs: 30_000, ...options };
  }

  protected async serve(s: Socket): Promise<void> {
    const r = new HandshakeReader(s, 1024, this.opts.handshakeTimeoutMs);
    const [ver, n] = await r.read(2);
    if (ver !== 5) throw new Error('not a SOCKS5 client');
    const methods = await r.read(n);
    const creds = this.opts.credentials;
    const want = creds ? 2 : isLoopback(s.remoteAddress) ? 0 : -1;
    if (want < 0 || !methods.includes(want)) {
      s.end(Buffer.from([5, 0xff]));
      return;
    }
    s.write(Buffer.from([5, want]));
    if (creds) {
      const [, ulen] = await r.read(2);
      const user = (await r.read(ulen)).toString();
      const [plen] = await r.read(1);
      const pass = (await r.read(plen)).toString();
      const ok = sameSecret(user, creds.username) && sameSecret(pass, creds.password);
      s.write(Buffer.from([1, ok ? 0 : 1]));
      if (!ok) {
        s.end();
        return;
      }
    }
    const head = await r.read(4);
    const [v, cmd, , atyp] = head;
    if (v !== 5) throw new Error('not a SOCKS5 request');
    const addrLen = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? 1 + (await r.read(1).then((b) => b[0])) : -1;
    if (addrLen < 0) return this.reply(s, REPLY.badAddress);
    const rest = await r.read(atyp === 3 ? addrLen - 1 + 2 : addrLen + 2);
    const raw =
      atyp === 3 ? Buffer.concat([Buffer.from([3, addrLen - 1]), rest]) : Buffer.concat([Buffer.from([atyp]), rest]);
    const target = decodeAddress(raw, 0)!;
    if (cmd === 1) return this.connect(s, r, target.host, target.port);
    if (cmd === 3) return this.associate(s, r);
    return this.reply(s, REPLY.badCommand);
  }

  private reply(s: Socket, code: number, bound = encodeAddress('0.0.0.0', 0)): void {
    const out = Buffer.concat([Buffer.from([5, code, 0]), bound]);
    if (code === REPLY.ok) s.write(out);
    else s.end(out);
  }

  private async connect(s: Socket, r: HandshakeReader, host: string, port: number): Promise<void> {
    let remote: Awaited<ReturnType<Dialer>>;
    try {
      remote = await dialTarget(host, port, this.opts.dial, this.opts.resolve, this.opts.dialTimeoutMs);
    } catch (e) {
      r.done();
      if (e instanceof ProxyDialError) this.opts.onDialFailure?.(e);
      const code = e instanceof ProxyDialError ? FAILURE_REPLY[e.kind] : REPLY.failure;
      return this.reply(s, code);
    }
    const early = r.done();
    if (s.destroyed) {
      remote.destroy();
      return;
    }
    this.reply(s, REPLY.ok);
    if (early.length) remote.write(early);
    splice(s, remote);
  }

  /** UDP ASSOCIATE: a local UDP port relays between the client (only its own address) and the tailnet. */
  private async associate(s: Socket, r: HandshakeReader): Promise<void> {
    if (!this.opts.openUdp) return this.reply(s, REPLY.badCommand);
    r.done();
    const tail = this.opts.openUdp();
    const local: DgramSocket = createSocket(isIP(s.localAddress ?? '') === 6 ? 'udp6' : 'udp4');
    let client: RemoteInfo | undefined;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      tail.close();
      local.close();
      s.destroy();
    };
    local.on('error', close);
    await new Promise<void>((res) => local.bind(0, s.localAddress, () => res()));
    local.on('message', (msg, from) => {
      // Only the client that asked may use the relay; fragments (FRAG != 0) are not supported and dropped.
      if (from.address !== s.remoteAddress || msg.length < 4 || msg[0] !== 0 || msg[1] !== 0 || msg[2] !== 0) return;
      client = from;
      let dst: ReturnType<typeof decodeAddress>;
      try {
        dst = decodeAddress(msg, 3);
      } catch {
        return;
      }
      if (!dst) return;
      const data = msg.subarray(3 + dst.used);
      const { host, port } = dst;
      if (isIP(host)) {
        tail.send(data, port, host);
        return;
      }
      // Names resolve per datagram through the same resolver (MagicDNS answers from memory).
      this.opts.resolve?.(host).then(
        (as) => as[0] && tail.send(data, port, as[0]),
        () => {},
      );
    });
    tail.on('message', (data, from) => {
      if (!client) return;
      local.send(
        Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(from.address, from.port), data]),
        client.port,
        client.address,
      );
    });
    const bound = local.address();
    this.reply(s, REPLY.ok, encodeAddress(bound.address, bound.port));
    s.on('close', close);
    s.on('end', close);
    s.resume();
  }
}
