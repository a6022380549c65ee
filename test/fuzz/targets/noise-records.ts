// The ts2021 record stream from the control server, after the handshake: NoiseConn reassembles records across
// reads, opens them and takes the EarlyNoise preamble off the front. Hostile bytes may only end the connection
// with a NoiseError (conn.errored); onData itself never throws. The input is a list of reads, each "op, length,
// bytes": op bit 0 set seals the bytes here as the next record (so the fuzzer gets past the AEAD to the length
// checks and the EarlyNoise parser), clear passes them raw.
import { createCipheriv, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { NoiseError, recordNonce } from '../../../main/engine/control/noise.ts';
import { NoiseConn } from '../../../main/engine/control/noise-conn.ts';
import { allowOnly, Bytes } from '../contract.ts';

const key = new Uint8Array(randomBytes(32));

/** Just enough of a net.Socket for NoiseConn: events in, and the calls it makes. */
class FakeSocket extends EventEmitter {
  pause(): void {}
  resume(): void {}
  destroy(): void {}
  write(_d: Uint8Array, cb?: () => void): boolean {
    cb?.();
    return true;
  }
}

function seal(counter: bigint, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, recordNonce(counter), { authTagLength: 16 });
  const body = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  const rec = Buffer.alloc(3 + body.length);
  rec[0] = 4;
  rec.writeUInt16BE(body.length & 0xffff, 1);
  body.copy(rec, 3);
  return rec;
}

export function fuzz(data: Buffer): void {
  const socket = new FakeSocket();
  const conn = new NoiseConn(socket as unknown as Socket, new Uint8Array(32), key, Buffer.alloc(0));
  conn.on('error', () => {}); // the error is checked through conn.errored below
  const b = new Bytes(data);
  let counter = 0n;
  while (b.left > 0 && !conn.destroyed) {
    const op = b.u8();
    const bytes = Buffer.from(b.take(b.u16() % 5000));
    socket.emit('data', op & 1 ? seal(counter++, bytes) : bytes);
    while (conn.read() !== null) {}
  }
  if (conn.errored) allowOnly(conn.errored, NoiseError);
  conn.destroy();
}
