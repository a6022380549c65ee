// DERP framing (docs/protocol/datapath.md §1.3–1.5): type(1) ‖ length(u32 BE) ‖ payload. A streaming parser that turns the
// bytes of a connection into typed frames, however they were split into reads, and builders for the frames
// a client sends (plus the server frames, for fakes in tests). Pure: no I/O.

export const FRAME_HEADER_LEN = 5;
export const KEY_LEN = 32;
export const NONCE_LEN = 24;
export const PROTOCOL_VERSION = 2;
/** Most relayed bytes in one SendPacket/RecvPacket, not counting the 32-byte key. */
export const MAX_PACKET_SIZE = 64 << 10;
/** The official client refuses any frame larger than this. */
export const MAX_FRAME_SIZE = 1 << 20;
/** ServerKey frames beyond this are refused (the official client reads it with a 1 KiB limit). */
export const MAX_SERVER_KEY_FRAME = 1 << 10;
/** "DERP🔑" */
export const MAGIC = new Uint8Array([0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91]);

export const FrameType = {
  ServerKey: 0x01,
  ClientInfo: 0x02,
  ServerInfo: 0x03,
  SendPacket: 0x04,
  RecvPacket: 0x05,
  KeepAlive: 0x06,
  NotePreferred: 0x07,
  PeerGone: 0x08,
  PeerPresent: 0x09,
  ForwardPacket: 0x0a,
  WatchConns: 0x10,
  ClosePeer: 0x11,
  Ping: 0x12,
  Pong: 0x13,
  Health: 0x14,
  Restarting: 0x15,
} as const;

export const PeerGoneReason = { Disconnected: 0x00, NotHere: 0x01 } as const;

export type DerpFrame =
  | { type: 'serverKey'; key: Uint8Array }
  | { type: 'clientInfo'; key: Uint8Array; sealed: Uint8Array } // sealed = nonce ‖ box
  | { type: 'serverInfo'; sealed: Uint8Array }
  | { type: 'sendPacket'; dst: Uint8Array; packet: Uint8Array }
  | { type: 'recvPacket'; src: Uint8Array; packet: Uint8Array }
  | { type: 'keepAlive' }
  | { type: 'notePreferred'; preferred: boolean }
  | { type: 'peerGone'; peer: Uint8Array; reason: number }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'health'; problem: string }
  | { type: 'restarting'; reconnectInMs: number; tryForMs: number };

export class DerpFrameError extends Error {
  override readonly name = 'DerpFrameError';
  constructor(
    readonly reason: 'oversized' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

/** Mesh-only frames a plain client never acts on: skipped like unknown types. */
const IGNORED = new Set<number>([
  FrameType.PeerPresent,
  FrameType.ForwardPacket,
  FrameType.WatchConns,
  FrameType.ClosePeer,
]);
const KNOWN = new Set<number>(Object.values(FrameType).filter((t) => !IGNORED.has(t)));

const malformed = (what: string) => new DerpFrameError('malformed', what);

function atLeast(name: string, payload: Uint8Array, n: number): void {
  if (payload.length < n) throw malformed(`${name} frame of ${payload.length} bytes is shorter than ${n}`);
}

/** A copy as a plain Uint8Array (Buffer's slice would alias). */
const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Decodes one frame of a known type. Extra trailing bytes are allowed where the protocol allows growth. */
export function decodeFrame(type: number, payload: Uint8Array): DerpFrame {
  const p = payload;
  switch (type) {
    case FrameType.ServerKey:
      atLeast('ServerKey', p, MAGIC.length + KEY_LEN);
      if (!sameBytes(p.subarray(0, MAGIC.length), MAGIC)) throw malformed('ServerKey frame without the DERP magic');
      return { type: 'serverKey', key: copy(p.subarray(MAGIC.length, MAGIC.length + KEY_LEN)) };
    case FrameType.ClientInfo:
      atLeast('ClientInfo', p, KEY_LEN + NONCE_LEN);
      return { type: 'clientInfo', key: copy(p.subarray(0, KEY_LEN)), sealed: p.subarray(KEY_LEN) };
    case FrameType.ServerInfo:
      atLeast('ServerInfo', p, NONCE_LEN);
      return { type: 'serverInfo', sealed: p };
    case FrameType.SendPacket:
      atLeast('SendPacket', p, KEY_LEN);
      return { type: 'sendPacket', dst: p.subarray(0, KEY_LEN), packet: p.subarray(KEY_LEN) };
    case FrameType.RecvPacket:
      atLeast('RecvPacket', p, KEY_LEN);
      return { type: 'recvPacket', src: p.subarray(0, KEY_LEN), packet: p.subarray(KEY_LEN) };
    case FrameType.KeepAlive:
      return { type: 'keepAlive' };
    case FrameType.NotePreferred:
      atLeast('NotePreferred', p, 1);
      return { type: 'notePreferred', preferred: p[0] !== 0 };
    case FrameType.PeerGone:
      atLeast('PeerGone', p, KEY_LEN);
      return { type: 'peerGone', peer: p.subarray(0, KEY_LEN), reason: p.length > KEY_LEN ? p[KEY_LEN] : 0 };
    case FrameType.Ping:
      atLeast('Ping', p, 8);
      return { type: 'ping', data: copy(p.subarray(0, 8)) };
    case FrameType.Pong:
      atLeast('Pong', p, 8);
      return { type: 'pong', data: copy(p.subarray(0, 8)) };
    case FrameType.Health:
      return { type: 'health', problem: new TextDecoder('utf-8', { fatal: false }).decode(p) };
    case FrameType.Restarting: {
      atLeast('Restarting', p, 8);
      const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
      return { type: 'restarting', reconnectInMs: v.getUint32(0), tryForMs: v.getUint32(4) };
    }
    default:
      throw malformed(`frame type 0x${type.toString(16)} is not decodable`);
  }
}

/**
 * Bytes in, frames out. push() every chunk read from the connection, then call next() until it returns null.
 * Frames of unknown (or mesh-only) types are skipped without being buffered. A frame longer than maxFrameSize,
 * or a malformed known frame, throws DerpFrameError, and every later call throws it again: the stream is lost.
 * Payloads may alias the pushed chunks: do not modify a chunk after pushing it.
 */
export class FrameParser {
  private chunks: Uint8Array[] = [];
  private head = 0; // read offset into chunks[0]
  private buffered = 0;
  private skipping = 0; // bytes of an unknown frame still to discard
  private failed: DerpFrameError | null = null;
  /** Frames skipped because their type is unknown or mesh-only. */
  skippedFrames = 0;

  constructor(private readonly maxFrameSize = MAX_FRAME_SIZE) {}

  push(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
  }

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.buffered;
  }

  next(): DerpFrame | null {
    if (this.failed) throw this.failed;
    try {
      for (;;) {
        if (this.skipping > 0) {
          const n = Math.min(this.skipping, this.buffered);
          this.discard(n);
          this.skipping -= n;
          if (this.skipping > 0) return null;
        }
        if (this.buffered < FRAME_HEADER_LEN) return null;
        const header = this.peek(FRAME_HEADER_LEN);
        const type = header[0];
        const len = ((header[1] << 24) | (header[2] << 16) | (header[3] << 8) | header[4]) >>> 0;
        const limit =
          type === FrameType.ServerKey ? Math.min(MAX_SERVER_KEY_FRAME, this.maxFrameSize) : this.maxFrameSize;
        if (len > limit) {
          throw new DerpFrameError('oversized', `frame type 0x${type.toString(16)} of ${len} bytes exceeds ${limit}`);
        }
        if (!KNOWN.has(type)) {
          this.discard(FRAME_HEADER_LEN);
          this.skipping = len;
          this.skippedFrames++;
          continue;
        }
        if (this.buffered < FRAME_HEADER_LEN + len) return null;
        this.discard(FRAME_HEADER_LEN);
        return decodeFrame(type, this.take(len));
      }
    } catch (e) {
      this.failed = e instanceof DerpFrameError ? e : malformed(`frame parse failed: ${(e as Error).message}`);
      this.chunks = [];
      this.buffered = 0;
      throw this.failed;
    }
  }

  /** The first n buffered bytes (n ≤ buffered), copied only when they span chunks. */
  private peek(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.chunks[0];
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = new Uint8Array(n);
    let off = 0;
    for (let i = 0; off < n; i++) {
      const c = i === 0 ? first.subarray(this.head) : this.chunks[i];
      const m = Math.min(c.length, n - off);
      out.set(c.subarray(0, m), off);
      off += m;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    const out = this.peek(n);
    this.discard(n);
    return out;
  }

  private discard(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const avail = this.chunks[0].length - this.head;
      if (n < avail) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }
}

// ---- builders ----

/** type ‖ be32(len) ‖ parts… */
export function buildFrame(type: number, ...parts: Uint8Array[]): Uint8Array {
  const len = parts.reduce((n, p) => n + p.length, 0);
  if (len > MAX_FRAME_SIZE * 10) throw new DerpFrameError('oversized', `refusing to write a ${len}-byte frame`);
  const out = new Uint8Array(FRAME_HEADER_LEN + len);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, len);
  let off = FRAME_HEADER_LEN;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function checkKey(what: string, key: Uint8Array): void {
  if (key.length !== KEY_LEN) throw malformed(`${what} must be ${KEY_LEN} bytes, got ${key.length}`);
}

function check8(data: Uint8Array): void {
  if (data.length !== 8) throw malformed(`ping data must be 8 bytes, got ${data.length}`);
}

/** ClientInfo: clientPublic(32) ‖ sealed, where sealed = nonce(24) ‖ box(JSON) sealed to the server key. */
export function buildClientInfo(clientPublic: Uint8Array, sealed: Uint8Array): Uint8Array {
  checkKey('client key', clientPublic);
  if (sealed.length < NONCE_LEN + 16) throw malformed('ClientInfo box is shorter than nonce and tag');
  return buildFrame(FrameType.ClientInfo, clientPublic, sealed);
}

/** SendPacket: dst(32) ‖ packet; at most MAX_PACKET_SIZE bytes of packet. */
export function buildSendPacket(dst: Uint8Array, packet: Uint8Array): Uint8Array {
  checkKey('destination key', dst);
  if (packet.length > MAX_PACKET_SIZE) {
    throw new DerpFrameError('oversized', `packet of ${packet.length} bytes exceeds ${MAX_PACKET_SIZE}`);
  }
  return buildFrame(FrameType.SendPacket, dst, packet);
}

export function buildNotePreferred(preferred: boolean): Uint8Array {
  return buildFrame(FrameType.NotePreferred, Uint8Array.of(preferred ? 1 : 0));
}

export function buildPing(data: Uint8Array): Uint8Array {
  check8(data);
  return buildFrame(FrameType.Ping, data);
}

export function buildPong(data: Uint8Array): Uint8Array {
  check8(data);
  return buildFrame(FrameType.Pong, data);
}

export function buildKeepAlive(): Uint8Array {
  return buildFrame(FrameType.KeepAlive);
}

export function buildServerKey(serverPublic: Uint8Array): Uint8Array {
  checkKey('server key', serverPublic);
  return buildFrame(FrameType.ServerKey, MAGIC, serverPublic);
}

export function buildServerInfo(sealed: Uint8Array): Uint8Array {
  return buildFrame(FrameType.ServerInfo, sealed);
}

export function buildRecvPacket(src: Uint8Array, packet: Uint8Array): Uint8Array {
  checkKey('source key', src);
  return buildFrame(FrameType.RecvPacket, src, packet);
}

export function buildPeerGone(peer: Uint8Array, reason: number = PeerGoneReason.Disconnected): Uint8Array {
  checkKey('peer key', peer);
  return buildFrame(FrameType.PeerGone, peer, Uint8Array.of(reason));
}
