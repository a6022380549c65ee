// The engine's view of a TUN device: IP packets in, IP packets out, in batches. Hides the native addon and,
// where the OS offers it (Linux), the virtio_net_hdr framing: received TCP is written coalesced here, and the
// kernel's TCP super-packets (TSO) read from the device arrive already split by the addon (tun_offload.cc).
import { type NativeSystemError, type NativeTunDevice, type OffloadStats, TunDevice } from './native.ts';
import { TcpCoalescer } from './tcp-coalesce.ts';

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
  get tsoStats(): OffloadStats {
    return this.dev.offloadStats();
  }

  /**
   * Starts reading. onPacket gets each IP packet as a view into a reused buffer (copy to keep it);
   * onBatchEnd runs after each batch.
   */
  start(onPacket: (pkt: Uint8Array) => void, onBatchEnd: () => void, onError: (e: Error) => void): void {
    this.dev.start(
      (buf, lengths, count) => {
        let off = 0;
        for (let i = 0; i < count; i++) {
          const len = lengths[i];
          onPacket(buf.subarray(off, off + len));
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
