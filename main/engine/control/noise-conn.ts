// The ts2021 record layer as a Duplex over the upgraded socket: writes are cut into records of at most
// 4077 plaintext bytes; reads reassemble records across TCP reads. The server's EarlyNoise preamble is
// taken off the front of the plaintext stream, so what comes out is pure HTTP/2.
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { type Aead, createAead } from '../crypto/aead.ts';
import { MAX_PLAINTEXT, MAX_RECORD, MSG_RECORD, NoiseError, RECORD_HEADER, TAG, writeRecordNonce } from './noise.ts';

export const EARLY_MAGIC = Uint8Array.of(0xff, 0xff, 0xff, 0x54, 0x53);
const EARLY_HEADER = 9;
const EARLY_MAX_JSON = 1 << 20;

export interface EarlyNoise {
  nodeKeyChallenge?: string;
}

/**
 * Splits the EarlyNoise preamble off a plaintext stream. Feed it bytes; it returns the bytes that
 * belong to HTTP/2 once it has decided, or undefined while it still needs more.
 */
export class EarlyNoiseParser {
  private buf: Buffer = Buffer.alloc(0);
  done = false;
  early: EarlyNoise | undefined;

  push(chunk: Buffer): Buffer | undefined {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length < EARLY_HEADER) return undefined;
    if (!this.buf.subarray(0, 5).equals(EARLY_MAGIC)) return this.finish(this.buf);
    const len = this.buf.readUInt32BE(5);
    if (len > EARLY_MAX_JSON) throw new NoiseError(`EarlyNoise of ${len} bytes is too large`);
    if (this.buf.length < EARLY_HEADER + len) return undefined;
    try {
      this.early = JSON.parse(this.buf.subarray(EARLY_HEADER, EARLY_HEADER + len).toString('utf8')) as EarlyNoise;
    } catch {
      throw new NoiseError('EarlyNoise is not valid JSON');
    }
    return this.finish(this.buf.subarray(EARLY_HEADER + len));
  }

  private finish(rest: Buffer): Buffer {
    this.done = true;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}

export class NoiseConn extends Duplex {
  private sendCounter = 0n;
  private recvCounter = 0n;
  private inbox: Buffer = Buffer.alloc(0);
  private readonly early = new EarlyNoiseParser();
  private readonly sendAead: Aead;
  private readonly receiveAead: Aead;
  private readonly sendNonce = new Uint8Array(12);
  private readonly receiveNonce = new Uint8Array(12);

  constructor(
    private readonly socket: Socket,
    sendKey: Uint8Array,
    receiveKey: Uint8Array,
    /** Bytes already read from the socket after the handshake response. */
    leftover: Buffer,
  ) {
    super();
    this.sendAead = createAead(sendKey);
    this.receiveAead = createAead(receiveKey);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => this.push(null));
    socket.on('error', (e) => this.destroy(e));
    socket.on('close', () => {
      if (!this.destroyed) this.destroy();
    });
    if (leftover.length > 0) queueMicrotask(() => this.onData(leftover));
  }

  get earlyNoise(): EarlyNoise | undefined {
    return this.early.early;
  }

  private onData(d: Buffer): void {
    if (this.destroyed) return;
    this.inbox = this.inbox.length === 0 ? d : Buffer.concat([this.inbox, d]);
    try {
      for (let guard = 0; guard < 100_000 && this.inbox.length >= RECORD_HEADER; guard++) {
        if (this.inbox[0] !== MSG_RECORD) throw new NoiseError(`unexpected record type ${this.inbox[0]}`);
        const len = this.inbox.readUInt16BE(1);
        if (len < TAG || len + RECORD_HEADER > MAX_RECORD) throw new NoiseError(`bad record length ${len}`);
        if (this.inbox.length < RECORD_HEADER + len) break;
        const plain = this.open(this.inbox.subarray(RECORD_HEADER, RECORD_HEADER + len));
        this.inbox = this.inbox.subarray(RECORD_HEADER + len);
        this.deliver(plain);
      }
    } catch (e) {
      this.destroy(e instanceof Error ? e : new NoiseError(String(e)));
    }
  }

  private deliver(plain: Buffer): void {
    if (plain.length === 0) return;
    if (!this.early.done) {
      const rest = this.early.push(plain);
      if (rest === undefined || rest.length === 0) return;
      plain = rest;
    }
    if (!this.push(plain)) this.socket.pause();
  }

  /** Decrypts a record's ciphertext‖tag in place; the plaintext is a view into `cipher`. */
  private open(cipher: Buffer): Buffer {
    writeRecordNonce(this.receiveNonce, this.recvCounter++);
    const len = cipher.length - TAG;
    if (len < 0 || !this.receiveAead.open(cipher, 0, len, this.receiveNonce)) {
      throw new NoiseError('control record does not authenticate');
    }
    return cipher.subarray(0, len);
  }

  private seal(plain: Buffer): Buffer {
    writeRecordNonce(this.sendNonce, this.sendCounter++);
    const rec = Buffer.allocUnsafe(RECORD_HEADER + plain.length + TAG);
    rec[0] = MSG_RECORD;
    rec.writeUInt16BE(plain.length + TAG, 1);
    rec.set(plain, RECORD_HEADER);
    this.sendAead.seal(rec, RECORD_HEADER, plain.length, this.sendNonce);
    return rec;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const records: Buffer[] = [];
    for (let off = 0; off < chunk.length; off += MAX_PLAINTEXT) {
      records.push(this.seal(chunk.subarray(off, off + MAX_PLAINTEXT)));
    }
    this.socket.write(records.length === 1 ? records[0] : Buffer.concat(records), cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }

  // node:http2 treats its connection like a net.Socket; these keep it content.
  setNoDelay(): this {
    this.socket.setNoDelay(true);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.socket.setTimeout(ms, cb);
    return this;
  }
  ref(): this {
    this.socket.ref();
    return this;
  }
  unref(): this {
    this.socket.unref();
    return this;
  }
}
