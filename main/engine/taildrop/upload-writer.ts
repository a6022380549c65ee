// Writes an upload's body to its partial file while the socket is read on. The chunks (64 KiB) gather into batches
// of up to BATCH_BYTES, each written with one positional writev; several batches may be on their way to the disk
// at once, so a write that takes long (the thread pool busy, the filesystem committing) does not stop the socket
// from being read — a reader that stalls shrinks the TCP window and slows the sender. Reading pauses only when
// MAX_WRITES_IN_FLIGHT writes are pending and a batch is full: memory stays bounded by about
// (MAX_WRITES_IN_FLIGHT + 1) × BATCH_BYTES per upload.
import type { FileHandle } from 'node:fs/promises';

const BATCH_BYTES = 1 << 20;
const MAX_WRITES_IN_FLIGHT = 4;

export class UploadWriter {
  #batch: Buffer[] = [];
  #batchBytes = 0;
  /** Bytes handed to writes so far (the next write's position is start + this). */
  #queued = 0;
  readonly #pending = new Set<Promise<void>>();
  #failure: Error | undefined;
  #slotFreed: (() => void) | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly start: number,
  ) {}

  /**
   * Takes a chunk; resolves at once unless every write slot is taken and a batch is full, then when one frees.
   * Rejects with the first write's failure.
   */
  async add(chunk: Buffer): Promise<void> {
    if (this.#failure) throw this.#failure;
    this.#batch.push(chunk);
    this.#batchBytes += chunk.length;
    if (this.#pending.size === 0) return this.#write();
    if (this.#batchBytes < BATCH_BYTES) return;
    while (this.#pending.size >= MAX_WRITES_IN_FLIGHT && !this.#failure) {
      await new Promise<void>((resolve) => {
        this.#slotFreed = resolve;
      });
    }
    if (this.#failure) throw this.#failure;
    this.#write();
  }

  /** Writes what is gathered and waits for every write; rejects with the first failure. */
  async finish(): Promise<void> {
    if (this.#batchBytes > 0 && !this.#failure) this.#write();
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    if (this.#failure) throw this.#failure;
  }

  /** After a failure elsewhere (a cut, the disk floor): writes what came, for the sender's resume; never rejects. */
  async abandon(): Promise<void> {
    await this.finish().catch(() => {});
  }

  #write(): void {
    const at = this.start + this.#queued; // explicit positions: several writes may be in flight
    const batch = this.#batch;
    this.#queued += this.#batchBytes;
    this.#batch = [];
    this.#batchBytes = 0;
    const p: Promise<void> = this.fh.writev(batch, at).then(
      () => {},
      (e: Error) => {
        this.#failure ??= e;
      },
    );
    this.#pending.add(p);
    void p.then(() => {
      this.#pending.delete(p);
      const wake = this.#slotFreed;
      this.#slotFreed = undefined;
      wake?.();
    });
  }
}
