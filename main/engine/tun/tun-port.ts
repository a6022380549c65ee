// The engine's view of a TUN device: IP packets in, IP packets out, in batches. Hides the native addon and,
// where the OS offers it (Linux), the virtio_net_hdr framing that lets received TCP be written coalesced.
import { type NativeSystemError, type NativeTunDevice, TunDevice } from './native.ts';
import { TcpCoalescer, VNET_HDR_LEN } from './tcp-coalesce.ts';

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
}

export class TunPort {
  private readonly coalescer: TcpCoalescer | undefined;
  private readonly pending: Uint8Array[] = [];
  /** Packets read with an offload header we did not ask for (dropped). */
  droppedOffloaded = 0;

  private constructor(private readonly dev: NativeTunDevice) {
    if (dev.vnetHdr) this.coalescer = new TcpCoalescer((pkts, n) => dev.writeMany(pkts, n));
  }

  static open(o: TunPortOptions): TunPort {
    try {
      return new TunPort(new TunDevice(o.name, { vnetHdr: o.coalesce ?? true }));
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
          // Without offloads requested, the header is all zero; a GSO packet would be one we cannot split.
          if (skip > 0 && buf[off + 1] !== 0) this.droppedOffloaded++;
          else if (len > skip) onPacket(buf.subarray(off + skip, off + len));
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
    this.pending.push(pkt);
    if (this.pending.length >= 64) this.flush();
  }

  flush(): void {
    if (this.coalescer) {
      this.coalescer.flush();
      return;
    }
    if (this.pending.length === 0) return;
    this.dev.writeMany(this.pending, this.pending.length);
    this.pending.length = 0;
  }

  close(): void {
    this.dev.close();
  }
}
