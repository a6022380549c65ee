// A file's bytes on their way to the send thread are moved between threads, not copied, when the source says
// they are the reader's alone (bytes that came over a channel); any other source's bytes are copied as before.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { type ByteSource, ownedBuffer } from '../../main/engine/protocol.ts';
import { SendThread } from '../../main/engine/taildrop/send-thread.ts';

test('ownedBuffer: only for a source with readsOwned, and only bytes that span their whole buffer', () => {
  const whole = new Uint8Array(16);
  const owned: ByteSource = { size: 16, readsOwned: true, read: async () => whole };
  const plain: ByteSource = { size: 16, read: async () => whole };
  assert.equal(ownedBuffer(owned, whole), whole.buffer);
  assert.equal(ownedBuffer(plain, whole), undefined);
  assert.equal(ownedBuffer(owned, whole.subarray(0, 8)), undefined, 'a view on part of a buffer');
  assert.equal(ownedBuffer(owned, whole.subarray(8)), undefined);
  assert.equal(ownedBuffer(owned, new Uint8Array(0)), undefined);
});

test('the send thread gets an owned source’s bytes moved (detached here) and a plain source’s copied', async () => {
  let got = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET') return void res.writeHead(404).end();
    req.on('data', (d: Buffer) => {
      got += d.length;
    });
    req.on('end', () => res.writeHead(200).end('{}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const thread = new SendThread();
  try {
    const size = 3 << 20;
    const handed: Uint8Array[] = [];
    const source = (readsOwned: boolean): ByteSource => ({
      size,
      readsOwned,
      read: async (_offset, length) => {
        const b = new Uint8Array(length).fill(7);
        handed.push(b);
        return b;
      },
    });
    await thread.send({ base, source: source(true), name: 'moved.bin' });
    assert.equal(got, size, 'all bytes arrived');
    assert.ok(handed.length >= 3 && handed.every((b) => b.byteLength === 0), 'each piece moved to the thread');
    handed.length = 0;
    got = 0;
    await thread.send({ base, source: source(false), name: 'copied.bin' });
    assert.equal(got, size);
    assert.ok(
      handed.every((b) => b.byteLength > 0),
      'a plain source keeps its bytes',
    );
  } finally {
    await thread.close();
    server.closeAllConnections();
    server.close();
  }
});
