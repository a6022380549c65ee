// UDP through the native addon's recvmmsg/sendmmsg sockets (Linux): one system call moves a batch each way (up
// to 64 datagrams or GRO trains in, up to MAX_PENDING datagrams out as GSO runs). Sends are buffered until
// flush(), which the device calls at the end of each batch.
import { TAG_BYTES } from '../crypto/aead.ts';
import { formatAddress } from '../packet/ip.ts';
import { type NativeUdpBatchSocket, UDP_SLOT_BYTES, UDP_TRUNCATED, UdpBatchSocket } from '../tun/native.ts';
import { TRANSPORT_HEADER_SIZE } from '../wg/constants.ts';
import { type Endpoint, endpointOf } from '../wg/endpoint.ts';
import { MessageSlot, type MessageViews } from '../wg/keypair.ts';
import { bindError, type UdpBindError } from './udp.ts';

/**
 * `views`, when set, are msg's views (msg === views.msg), kept per receive slot and message length (see
 * MessageSlot); datagrams too short for a transport message come without.
 */
export type DatagramBatchHandler = (msg: Uint8Array, from: Endpoint, views: MessageViews | undefined) => void;

const MIN_MESSAGE = TRANSPORT_HEADER_SIZE + TAG_BYTES;

/**
 * Datagrams buffered before a flush: as many as the device's send ring lends (it flushes when all are out), so
 * that a TUN batch of TSO super-packets goes out in one sendmmsg with each super-packet's datagrams in one GSO
 * run. At 64 the flush cut the runs (and made a system call) every 64 datagrams.
 */
const MAX_PENDING = 128;

function bind(family: 4 | 6, port: number): NativeUdpBatchSocket {
  try {
    return new UdpBatchSocket(family, family === 4 ? '0.0.0.0' : '::', port);
  } catch (e) {
    throw bindError(e as NodeJS.ErrnoException, port);
  }
}

/** Remembers the last source so that steady traffic from one peer allocates no Endpoint per datagram. */
class SourceCache {
  private readonly addr = new Uint8Array(16);
  private port = -1;
  private endpoint: Endpoint | undefined;

  lookup(addrs: Uint8Array, at: number, port: number): Endpoint | undefined {
    if (port === this.port && this.endpoint) {
      let same = true;
      for (let i = 0; i < 16; i++) {
        if (addrs[at + i] !== this.addr[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.endpoint;
    }
    const raw = addrs.subarray(at, at + 16);
    const isMapped = raw.subarray(0, 10).every((b) => b === 0) && raw[10] === 0xff && raw[11] === 0xff;
    let ep: Endpoint;
    try {
      ep = endpointOf(formatAddress(isMapped ? raw.subarray(12) : raw), port);
    } catch {
      return undefined; // port 0 or similar nonsense: not a peer we can answer
    }
    this.addr.set(raw);
    this.port = port;
    this.endpoint = ep;
    return ep;
  }
}

const EMPTY = new Uint8Array(0);

export class BatchUdpTransport {
  /** Datagrams to send: pending[0, count). Kept at its size (emptying an array by length = 0 frees its storage). */
  private readonly pending: Uint8Array[] = new Array(MAX_PENDING).fill(EMPTY);
  private count = 0;
  private pendingTo: Endpoint | undefined;

  private constructor(
    private readonly v4: NativeUdpBatchSocket,
    private readonly v6: NativeUdpBatchSocket | undefined,
    readonly port: number,
  ) {}

  static open(port: number, onMessage: DatagramBatchHandler, onBatchEnd: () => void): BatchUdpTransport {
    const v4 = bind(4, port);
    let v6: NativeUdpBatchSocket | undefined;
    try {
      v6 = bind(6, v4.port);
    } catch (e) {
      if ((e as UdpBindError).code === 'EADDRINUSE') {
        v4.close();
        throw e;
      }
      v6 = undefined; // no IPv6 on this host
    }
    const t = new BatchUdpTransport(v4, v6, v4.port);
    for (const s of [v4, v6]) {
      if (!s) continue;
      const cache = new SourceCache();
      // The batch buffer is the same object on every call: its slots' views are made once (per message length).
      let slotsOf: Uint8Array | undefined;
      let slots: MessageSlot[] = [];
      s.start((buf, lengths, addrs, ports, count) => {
        if (buf !== slotsOf) {
          slotsOf = buf;
          slots = [];
          for (let i = 0; i * UDP_SLOT_BYTES < buf.length; i++) {
            slots.push(new MessageSlot(UDP_SLOT_BYTES - MIN_MESSAGE, buf, i * UDP_SLOT_BYTES));
          }
        }
        for (let i = 0; i < count; i++) {
          const len = lengths[i];
          if (len === UDP_TRUNCATED) continue;
          const from = cache.lookup(addrs, i * 16, ports[i]);
          if (!from) continue;
          if (len < MIN_MESSAGE) {
            onMessage(buf.subarray(i * UDP_SLOT_BYTES, i * UDP_SLOT_BYTES + len), from, undefined);
            continue;
          }
          const views = slots[i].viewsFor(len - MIN_MESSAGE);
          onMessage(views.msg, from, views);
        }
        onBatchEnd();
      });
    }
    return t;
  }

  send(msg: Uint8Array, to: Endpoint): void {
    if (this.pendingTo !== to || this.count >= MAX_PENDING) this.flush();
    this.pendingTo = to;
    this.pending[this.count++] = msg;
  }

  flush(): void {
    const to = this.pendingTo;
    const n = this.count;
    if (!to || n === 0) return;
    const s = to.family === 6 ? this.v6 : this.v4;
    try {
      s?.sendMany(this.pending, n, to.mapped, to.port);
    } catch {
      // A send error (no route, unreachable) concerns these datagrams only; WireGuard retries by itself.
    }
    this.count = 0;
    this.pendingTo = undefined;
  }

  /** sendmmsg from a thread of each socket's own (see native/src/udp_send_linux.h), or in the caller. */
  setSendThread(on: boolean): void {
    this.v4.setSendThread(on);
    this.v6?.setSendThread(on);
  }

  /** Marks both sockets' datagrams (SO_MARK); throws the system error when the kernel refuses. */
  setMark(mark: number): void {
    this.v4.setMark(mark);
    this.v6?.setMark(mark);
  }

  close(): void {
    this.v4.close();
    this.v6?.close();
  }
}
