// Typed access to the native addon (native/, built by `npm install` through node-gyp): a TUN device and, on
// Linux, a UDP socket with recvmmsg/sendmmsg batching. Loading is lazy: importing this module never throws, so
// callers can ask nativeAvailable() and fall back (to node:dgram for UDP).
//
// Receive batches reuse one Buffer and typed arrays for the life of the object: copy what you keep before the
// callback returns. Errors thrown by the addon carry `code` (an errno name such as 'EPERM', 'EBUSY',
// 'EADDRINUSE'), `errno` (negative, as in node) and `syscall`.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Where node-gyp puts the addon, resolved relative to this file. */
export const NATIVE_ADDON_PATH = fileURLToPath(
  new URL('../../../native/build/Release/trellis_tun.node', import.meta.url),
);

/** TUN batches: packets are packed back-to-back in a Buffer of this size; packet i starts at sum(lengths[0..i)). */
export const TUN_BATCH_BYTES = 256 * 1024;
/** At most this many packets per TUN callback. */
export const TUN_MAX_BATCH = 256;
/** UDP batches: datagram i lives at byte offset i * UDP_SLOT_BYTES of the shared Buffer. */
export const UDP_SLOT_BYTES = 4096;
/** At most this many datagrams per UDP callback. */
export const UDP_MAX_BATCH = 64;
/** The length reported for a datagram that did not fit in its slot (its bytes are incomplete: drop it). */
export const UDP_TRUNCATED = 0xffffffff;

/** A system error raised by the addon (the shape of node's own system errors). */
export interface NativeSystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/** Called once per batch; `buf` and `lengths` are the same objects every time. */
export type TunPacketsCallback = (buf: Buffer, lengths: Uint32Array, count: number) => void;
/**
 * Called once per recvmmsg batch. `addrs` holds 16 bytes per datagram (IPv4 as ::ffff:a.b.c.d), `ports` the
 * source port; all four arrays are the same objects every time.
 */
export type UdpDatagramsCallback = (
  buf: Buffer,
  lengths: Uint32Array,
  addrs: Uint8Array,
  ports: Uint16Array,
  count: number,
) => void;
/**
 * A read error that ended reading (e.g. the interface was deleted). Without this callback the error is raised
 * as an uncaught exception. Exceptions thrown by the data callback always go to process 'uncaughtException'.
 */
export type NativeErrorCallback = (err: NativeSystemError) => void;

export interface NativeTunDevice {
  /** The interface name the OS gave (e.g. 'tun0', 'utun7'). */
  readonly name: string;
  /** The file descriptor (-1 on Windows and after close()). */
  readonly fd: number;
  /**
   * True when packets written must carry a 10-byte virtio_net_hdr first (Linux, when asked for; zeros for a
   * plain packet). Reads never show it: the addon strips it and hands over plain IP packets.
   */
  readonly vnetHdr: boolean;
  /**
   * True when TCP segmentation and checksum offload were turned on (Linux, vnetHdr and tso asked for): the kernel
   * then hands over TCP super-packets and partial checksums, which the addon splits and finishes before the batch
   * reaches JS.
   */
  readonly tso: boolean;
  readonly closed: boolean;
  /** Starts (or re-targets) reading; keeps the object and the event loop alive until stop() or close(). */
  start(onPackets: TunPacketsCallback, onError?: NativeErrorCallback): void;
  stop(): void;
  /** Writes one IP packet; false if the queue is full (the packet is dropped). Throws on other errors. */
  write(packet: Uint8Array): boolean;
  /** Writes packets[0..count); returns how many went out (stops at a full queue). */
  writeMany(packets: readonly Uint8Array[], count: number): number;
  /** Stops reading and closes the device (the interface goes away); idempotent. */
  close(): void;
  /** Offload counters of the read side (tso): super-packets split, the segments they gave, malformed frames dropped. */
  offloadStats(): OffloadStats;
}

export interface OffloadStats {
  superPackets: number;
  segments: number;
  dropped: number;
}

export interface NativeUdpBatchSocket {
  /** The bound port (useful after binding port 0). */
  readonly port: number;
  readonly fd: number;
  readonly closed: boolean;
  /**
   * True when the kernel took UDP_GRO: a GSO train from a sender then arrives as one buffer, which the addon
   * splits into one slot per datagram (same source for each), so callbacks look the same either way.
   */
  readonly gro: boolean;
  /** Datagrams received so far as part of a coalesced train (0 without GRO): shows GRO at work. */
  readonly coalesced: number;
  start(onDatagrams: UdpDatagramsCallback, onError?: NativeErrorCallback): void;
  stop(): void;
  /** Sends one datagram to a 16-byte address (IPv4-mapped for IPv4); false if the send queue is full. */
  send(buf: Uint8Array, addr: Uint8Array, port: number): boolean;
  /** Sends bufs[0..count) to one destination with sendmmsg; returns how many were sent (partial when full). */
  sendMany(bufs: readonly Uint8Array[], count: number, addr: Uint8Array, port: number): number;
  /** SO_MARK on the socket (Linux, CAP_NET_ADMIN): policy rules route marked datagrams off a full tunnel. */
  setMark(mark: number): void;
  /**
   * sendMany's datagrams go out from a thread of the socket's own (copied into its queue; sendMany then returns
   * at once) or, off, in the caller's thread. Off by default.
   */
  setSendThread(on: boolean): void;
  /** Datagrams the send thread dropped: its queue stayed full, or the kernel refused them. */
  readonly sendDropped: number;
  close(): void;
}

export interface NativeTunDeviceConstructor {
  /** Opens a TUN device; an empty name lets the OS pick (on macOS a name must be 'utunN'). */
  new (name: string, options?: { vnetHdr?: boolean; tso?: boolean }): NativeTunDevice;
}

export interface NativeUdpBatchSocketConstructor {
  /** Binds a non-blocking UDP socket (IPv6 sockets are IPv6-only). Throws code 'ENOSYS' off Linux. */
  new (family: 4 | 6, address: string, port: number): NativeUdpBatchSocket;
}

/** What the compiled module exports. */
export interface NativeAddon {
  readonly TunDevice: NativeTunDeviceConstructor;
  readonly UdpBatchSocket: NativeUdpBatchSocketConstructor;
  readonly udpBatchSupported: boolean;
  readonly TUN_BATCH_BYTES: number;
  readonly TUN_MAX_BATCH: number;
  readonly UDP_SLOT_BYTES: number;
  readonly UDP_MAX_BATCH: number;
  readonly UDP_TRUNCATED: number;
  /** The big-endian 16-bit words of b[from, to) summed, folded to 16 bits (native/src/checksum.cc). */
  sum16(b: Uint8Array, from: number, to: number): number;
  /**
   * For tests and fuzzing only: one frame as a TSO TUN read gives it (virtio_net_hdr + packet) through the read
   * loop's splitter, fresh each call; packets is empty when the frame was dropped.
   */
  splitForTest(frame: Uint8Array): OffloadStats & { packets: Buffer[] };
  /** For tests only: frames read in turn by the device's batch reader; the batches it hands over, as packet lists. */
  batchesForTest(frames: Uint8Array[]): Buffer[][];
}

/** The addon is missing, stale, or was built for another runtime. */
export class NativeAddonError extends Error {
  override readonly name = 'NativeAddonError';
  readonly code = 'ERR_TRELLIS_NATIVE_ADDON';
}

let addon: NativeAddon | undefined;
let failure: NativeAddonError | undefined;

/** Loads the addon once; throws NativeAddonError (the same one on every later call) if it cannot be used. */
export function loadNativeAddon(): NativeAddon {
  if (addon) return addon;
  if (failure) throw failure;
  const require = createRequire(import.meta.url);
  let mod: NativeAddon;
  try {
    mod = require(NATIVE_ADDON_PATH) as NativeAddon;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
    const why = missing ? 'is not built' : `cannot be loaded (${(err as Error).message})`;
    failure = new NativeAddonError(
      `the native addon ${NATIVE_ADDON_PATH} ${why}: run npm install to build the native addon`,
      { cause: err },
    );
    throw failure;
  }
  // Layout constants, and functions added since the first builds (a stale build lacks them).
  const stale =
    typeof mod.sum16 !== 'function' ||
    (mod.udpBatchSupported &&
      typeof (mod.UdpBatchSocket.prototype as { setSendThread?: unknown }).setSendThread !== 'function') ||
    mod.TUN_BATCH_BYTES !== TUN_BATCH_BYTES ||
    mod.TUN_MAX_BATCH !== TUN_MAX_BATCH ||
    mod.UDP_SLOT_BYTES !== UDP_SLOT_BYTES ||
    mod.UDP_MAX_BATCH !== UDP_MAX_BATCH ||
    mod.UDP_TRUNCATED !== UDP_TRUNCATED;
  if (stale) {
    failure = new NativeAddonError(
      `the native addon ${NATIVE_ADDON_PATH} is stale (its batch layout or functions differ): run npm install to rebuild it`,
    );
    throw failure;
  }
  addon = mod;
  return addon;
}

/** True when the addon loads. */
export function nativeAvailable(): boolean {
  try {
    loadNativeAddon();
    return true;
  } catch {
    return false;
  }
}

/** True when UdpBatchSocket can be used (addon built, Linux). */
export function udpBatchAvailable(): boolean {
  return nativeAvailable() && loadNativeAddon().udpBatchSupported;
}

// Stand-ins for the native classes that load the addon on first construction, so importing this module is
// safe without a build. `new` returns the native object; instanceof checks against the native class.
function lazyClass<C extends abstract new (...args: never[]) => object>(name: string, pick: (a: NativeAddon) => C): C {
  const ctor = function (this: unknown, ...args: unknown[]): object {
    if (new.target === undefined) throw new TypeError(`Class constructor ${name} cannot be invoked without 'new'`);
    return Reflect.construct(pick(loadNativeAddon()), args) as object;
  };
  Object.defineProperty(ctor, 'name', { value: name });
  Object.defineProperty(ctor, Symbol.hasInstance, {
    value: (v: unknown): boolean => nativeAvailable() && v instanceof pick(loadNativeAddon()),
  });
  return ctor as unknown as C;
}

export const TunDevice: NativeTunDeviceConstructor = lazyClass('TunDevice', (a) => a.TunDevice);
export const UdpBatchSocket: NativeUdpBatchSocketConstructor = lazyClass('UdpBatchSocket', (a) => a.UdpBatchSocket);
