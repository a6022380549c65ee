// Bytes across the daemon's socket: a Buffer attached to a message travels as raw bytes after its line, and its
// toJSON (a number per byte) is never called on the way; nested and several attachments keep their places.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';
import { test } from 'node:test';
import { SocketTransport } from '../../main/engine/ipc/rpc.ts';

test('a Buffer attachment crosses the socket intact without its toJSON being called', async (t) => {
  let received: (m: unknown) => void = () => {};
  const server = createServer((sock) => new SocketTransport(sock).onMessage((m) => received(m)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const sock = createConnection((server.address() as { port: number }).port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const tx = new SocketTransport(sock);
  t.after(() => tx.close());

  const toJSON = Buffer.prototype.toJSON;
  let calls = 0;
  Buffer.prototype.toJSON = function (this: Buffer) {
    calls++;
    return toJSON.call(this);
  };
  t.after(() => {
    Buffer.prototype.toJSON = toJSON;
  });
  const big = randomBytes(1 << 20);
  const small = Uint8Array.from([1, 2, 3]);
  const got = new Promise<unknown>((r) => {
    received = r;
  });
  tx.send({ type: 'data', id: 1, seq: 2, bytes: big, more: { list: [small, 'x'] } });
  const m = (await got) as { type: string; id: number; bytes: Uint8Array; more: { list: [Uint8Array, string] } };
  assert.equal(calls, 0, 'toJSON never ran');
  assert.equal(m.type, 'data');
  assert.equal(m.id, 1);
  assert.ok(Buffer.from(m.bytes).equals(big));
  assert.deepEqual([...m.more.list[0]], [1, 2, 3]);
  assert.equal(m.more.list[1], 'x');
});
