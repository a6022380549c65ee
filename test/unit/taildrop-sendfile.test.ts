// Taildrop's send path by sendfile(2) (send-sendfile.ts, native/src/fd_sendfile.cc) over a real loopback socket to
// the real PeerAPI: the bytes arrive intact (sha256), a resume starts at the receiver's offset, a cancel ends a send
// stuck on a full socket, and an unexpected errno — or a descriptor sendfile cannot use — hands the rest to the
// read/write path with no byte sent twice or lost. Also the native function's answers to bad descriptors.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { FdSource } from '../../main/engine/fdpass/fd-source.ts';
import { BLOCK_SIZE, type Inbox } from '../../main/engine/taildrop/inbox.ts';
import { E, type KernelCopyAddon, kernelCopyAddon } from '../../main/engine/taildrop/kernel-copy.ts';
import { type SendProgress, sendFile, TaildropSendError } from '../../main/engine/taildrop/send.ts';
import { SENDFILE_SLICE_BYTES } from '../../main/engine/taildrop/send-sendfile.ts';
import { withPeerApi } from './peerapi-rig.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const addon = kernelCopyAddon();
const skip = addon ? false : 'sendfile is Linux only (or the addon is not built)';

/** The real addon, counting sendfile's results; after failAfter calls each call answers failWith. */
function counting(failAfter = Number.POSITIVE_INFINITY, failWith = -E.EINVAL) {
  const results: number[] = [];
  const a = addon as KernelCopyAddon;
  const wrapped: KernelCopyAddon = {
    ...a,
    fdSendfile(out, inFd, offset, count, waitMs) {
      const n = results.length >= failAfter ? failWith : a.fdSendfile(out, inFd, offset, count, waitMs);
      results.push(n);
      return n;
    },
  };
  return { wrapped, results };
}

async function withReceiver(fn: (base: string, inbox: Inbox) => Promise<void>) {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-sf-'));
  try {
    await withPeerApi(path.join(dir, 'state'), fn);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function fileOf(bytes: Buffer): Promise<{ fd: number; done: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-sf-src-'));
  const file = path.join(dir, 'src.bin');
  await writeFile(file, bytes);
  const fd = openSync(file, 'r');
  return { fd, done: () => rm(dir, { recursive: true, force: true }) };
}

describe('Taildrop send by sendfile', { skip }, () => {
  test('the body goes by sendfile in slices and arrives intact; progress is reported', async () => {
    const data = randomBytes(3 * SENDFILE_SLICE_BYTES + 12_345);
    const src = await fileOf(data);
    const { wrapped, results } = counting();
    const progress: SendProgress[] = [];
    await withReceiver(async (base, inbox) => {
      const r = await sendFile({
        base,
        source: new FdSource(src.fd, data.length, true),
        name: 'big.bin',
        kernelCopy: wrapped,
        onProgress: (p) => progress.push(p),
      });
      assert.deepEqual(r, { total: data.length, resumedFrom: 0 });
      assert.equal(sha(await readFile(path.join(inbox.dir, 'big.bin'))), sha(data));
    });
    const sent = results.filter((n) => n > 0).reduce((a, b) => a + b, 0);
    assert.equal(sent, data.length, 'every byte of the body went by sendfile');
    assert.ok(
      results.every((n) => n > 0 || n === -E.EAGAIN),
      `only progress or a full socket: ${results}`,
    );
    assert.equal(progress.at(-1)?.sent, data.length);
    closeSync(src.fd);
    await src.done();
  });

  test('a resume sends from the receiver offset on, by sendfile', async () => {
    const data = randomBytes(5 * BLOCK_SIZE + 777);
    const src = await fileOf(data);
    const { wrapped, results } = counting();
    await withReceiver(async (base, inbox) => {
      await inbox.ensure();
      await writeFile(inbox.partialPath('r.bin', '7'), data.subarray(0, 3 * BLOCK_SIZE + 100), { mode: 0o600 });
      const r = await sendFile({
        base,
        source: new FdSource(src.fd, data.length, true),
        name: 'r.bin',
        kernelCopy: wrapped,
      });
      assert.equal(
        r.resumedFrom,
        3 * BLOCK_SIZE + 100,
        'the blocks the receiver holds (the last one short) are skipped',
      );
      assert.equal(sha(await readFile(path.join(inbox.dir, 'r.bin'))), sha(data));
      assert.deepEqual(await readdir(inbox.dir), ['r.bin']);
    });
    const sent = results.filter((n) => n > 0).reduce((a, b) => a + b, 0);
    assert.equal(sent, data.length - 3 * BLOCK_SIZE - 100, 'only the rest went out');
    closeSync(src.fd);
    await src.done();
  });

  test('an unexpected errno mid-body: the rest goes by read/write from that offset, nothing twice', async () => {
    const data = randomBytes(2 * SENDFILE_SLICE_BYTES + 999);
    const src = await fileOf(data);
    const { wrapped, results } = counting(1, -E.EINVAL);
    await withReceiver(async (base, inbox) => {
      await sendFile({ base, source: new FdSource(src.fd, data.length, true), name: 'f.bin', kernelCopy: wrapped });
      assert.equal(sha(await readFile(path.join(inbox.dir, 'f.bin'))), sha(data));
    });
    assert.ok(results[0] > 0 && results[0] < data.length, `first slice by sendfile: ${results}`);
    assert.deepEqual(results.slice(1), [-E.EINVAL], 'one failure, then no more sendfile');
    closeSync(src.fd);
    await src.done();
  });

  test('a descriptor that is no regular file: sendfile refuses it and the read/write path sends', async () => {
    // A pipe: sendfile answers ESPIPE at once. (Its bytes cannot be read by position either, so the source's reads
    // are served from memory: what is tested is the hand-over, not the pipe.)
    const data = randomBytes(100_000);
    const { wrapped, results } = counting();
    const pipe = (addon as KernelCopyAddon).fdPipe() as [number, number];
    const source = Object.assign(new FdSource(pipe[0], data.length, true), {
      read: async (offset: number, length: number) => data.subarray(offset, offset + length),
    });
    await withReceiver(async (base, inbox) => {
      await sendFile({ base, source, name: 'p.bin', kernelCopy: wrapped });
      assert.equal(sha(await readFile(path.join(inbox.dir, 'p.bin'))), sha(data));
    });
    assert.deepEqual(results, [-E.ESPIPE], 'tried once, refused, not tried again');
    closeSync(pipe[0]);
    closeSync(pipe[1]);
  });

  test('a cancel ends a send stuck on a full socket; the thread is not held', async () => {
    const data = randomBytes(64 << 20);
    const src = await fileOf(data);
    // A receiver that takes the head and never reads the body: the socket fills, sendfile waits for room.
    let putSeen = false;
    const server = createServer((req, res) => {
      if (req.method === 'GET') return void res.writeHead(404).end();
      putSeen = true;
      req.pause();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const { wrapped, results } = counting();
    const ac = new AbortController();
    const sending = sendFile({
      base: `http://127.0.0.1:${port}`,
      source: new FdSource(src.fd, data.length, true),
      name: 'c.bin',
      kernelCopy: wrapped,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.sent > 0) ac.abort();
      },
    });
    await assert.rejects(sending, (e: Error) => e instanceof TaildropSendError && /cancelled/.test(e.message));
    assert.ok(putSeen, 'the upload had started');
    const sent = results.filter((n) => n > 0).reduce((a, b) => a + b, 0);
    assert.ok(sent > 0 && sent < data.length, `cut mid-body after ${sent} bytes`);
    server.closeAllConnections();
    server.close();
    closeSync(src.fd);
    await src.done();
  });

  test('an answer before the body is out (507) ends the send with it, and the connection is closed', async () => {
    const data = randomBytes(16 << 20);
    const src = await fileOf(data);
    let closed!: Promise<void>;
    const server = createServer((req, res) => {
      if (req.method === 'GET') return void res.writeHead(404).end();
      closed = new Promise((r) => req.socket.once('close', () => r()));
      res.writeHead(507, { 'content-type': 'text/plain' }).end('no room\n'); // the body is never read
    });
    server.keepAliveTimeout = 600_000; // the server would keep the connection open: only the sender closes it
    server.requestTimeout = 0;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const { wrapped } = counting();
    await assert.rejects(
      sendFile({
        base: `http://127.0.0.1:${port}`,
        source: new FdSource(src.fd, data.length, true),
        name: 'n.bin',
        kernelCopy: wrapped,
      }),
      (e: Error) => e instanceof TaildropSendError && e.status === 507 && /no room/.test(e.message),
    );
    await closed; // by the sender: the server keeps it open
    server.close();
    closeSync(src.fd);
    await src.done();
  });

  test('native: bad descriptors and arguments answer an errno or a TypeError, never a crash', () => {
    const a = addon as KernelCopyAddon;
    assert.equal(a.fdSendfile(1 << 30, 1 << 30, 0, 10, 10), -E.EBADF);
    const fd = openSync(process.execPath, 'r');
    assert.ok(a.fdSendfile(fd, fd, 0, 10, 10) < 0, 'a file is no socket');
    closeSync(fd);
    assert.equal(a.fdSendfile(1 << 30, 1 << 30, 0, 0, 10), 0, 'nothing asked, nothing done');
    assert.throws(() => a.fdSendfile(-1, 0, 0, 1, 1), TypeError);
    assert.throws(() => (a.fdSendfile as unknown as (...x: unknown[]) => number)('x', 0, 0, 1, 1), TypeError);
    assert.throws(() => a.fdSendfile(0, 0, 0.5, 1, 1), TypeError);
  });
});
