// The engine's view of a TUN device: IP packets in, IP packets out, in batches. Hides the native addon and,
// where the OS offers it (Linux), the virtio_net_hdr framing: received TCP is written coalesced, and the kernel's
// TCP super-packets (TSO) read from the device are split here (tso-split.ts).
import { type NativeSystemError, type NativeTunDevice, TunDevice } from './native.ts';
import { TcpCoalescer, VNET_HDR_LEN } from './tcp-coalesce.ts';
import { TsoSplitter } from './tso-split.ts';

const EMPTY = new Uint8Array(0);

export class TunOpenError extends Error {
  override readonly name = 'TunOpenError';
  constructor(
    message: string,
    readonly kind: 'privilege' | 'busy' | 'os',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface TunPortOptions {
  name: string;
  /** Coalesce TCP on write when the OS allows it (default true). */
  coalesce?: boolean;
  /** With coalescing: also take TCP super-packets and partial checksums on read (default true). */
  tso?: boolean;
}

export class TunPort {
  private readonly coalescer: TcpCoalescer | undefined;
  /** Packets to write without coalescing: pending[0, count), the array kept at its size between batches. */
  private readonly pending: Uint8Array[] = new Array(64).fill(EMPTY);
  private count = 0;
  private readonly splitter = new TsoSplitter();

  private constructor(private readonly dev: NativeTunDevice) {
    if (dev.vnetHdr) this.coalescer = new TcpCoalescer((pkts, n) => dev.writeMany(pkts, n));
  }

  static open(o: TunPortOptions): TunPort {
    try {
      const vnetHdr = o.coalesce ?? true;
      return new TunPort(new TunDevice(o.name, { vnetHdr, tso: vnetHdr && (o.tso ?? true) }));
    } catch (e) {
      const code = (e as NativeSystemError).code;
      if (code === 'EPERM' || code === 'EACCES') {
        throw new TunOpenError(
          'creating a TUN device needs root or CAP_NET_ADMIN: run trellis with sudo',
          'privilege',
          {
            cause: e,
          },
        );
      }
      if (code === 'EBUSY')
        throw new TunOpenError(`an interface named ${o.name} is already in use`, 'busy', { cause: e });
      throw new TunOpenError(`cannot open TUN device ${o.name}: ${(e as Error).message}`, 'os', { cause: e });
    }
  }

  get name(): string {
    return this.dev.name;
  }

  /** True when the kernel may hand over TCP super-packets (they are split before onPacket sees them). */
  get tso(): boolean {
    return this.dev.tso;
  }

  /** Super-packets read and split, the segments they gave, and frames dropped for a malformed offload header. */
  get tsoStats(): { superPackets: number; segments: number; dropped: number } {
    const s = this.splitter;
    return { superPackets: s.superPackets, segments: s.segments, dropped: s.dropped };
  }

  /** Coalescing stats: super-packets written and the segments they carried. */
  get coalesceStats(): { superPackets: number; segments: number } {
    return { superPackets: this.coalescer?.coalesced ?? 0, segments: this.coalescer?.segmentsCoalesced ?? 0 };
  }

  /**
   * Starts reading. onPacket gets each IP packet as a view into a reused buffer (copy to keep it);
   * onBatchEnd runs after each batch.
   */
  start(onPacket: (pkt: Uint8Array) => void, onBatchEnd: () => void, onError: (e: Error) => void): void {
    const skip = this.dev.vnetHdr ? VNET_HDR_LEN : 0;
    this.dev.start(
      (buf, lengths, count) => {
        let off = 0;
        for (let i = 0; i < count; i++) {
          const len = lengths[i];
          // A plain packet has an all-zero header (flags and GSO type); anything else is offload work to finish.
          if (skip === 0 || (buf[off] === 0 && buf[off + 1] === 0)) {
            if (len > skip) onPacket(buf.subarray(off + skip, off + len));
          } else this.splitter.split(buf.subarray(off, off + len), onPacket);
          off += len;
        }
        onBatchEnd();
      },
      (e) => onError(e),
    );
  }

  /** Queues one IP packet for the TUN; the port owns it from now on. */
  write(pkt: Uint8Array): void {
    if (this.coalescer) {
      this.coalescer.push(pkt);
      return;
    }
    this.pending[this.count++] = pkt;
    if (this.count >= 64) this.flush();
  }

  flush(): void {
    if (this.coalescer) {
      this.coalescer.flush();
      return;
    }
    if (this.count === 0) return;
    this.dev.writeMany(this.pending, this.count);
    this.count = 0;
  }

  close(): void {
    this.dev.close();
  }
}
