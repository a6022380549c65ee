// The PeerAPI's receive path by splice(2) (receive-splice.ts, native/src/fd_splice.cc), as the receive thread runs
// it (blockingWrites): the bytes arrive intact, body bytes node read along with the head are written first, the
// disk floor crossed mid-body still answers 507 and keeps the partial, a connection cut mid-body keeps exactly what
// came. A spliced upload is answered with `Connection: close`. Also the native function's answers to bad input.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { E, type KernelCopyAddon, kernelCopyAddon } from '../../main/engine/taildrop/kernel-copy.ts';
import { DISK_CHECK_BYTES, type DiskSpace } from '../../main/engine/taildrop/peerapi.ts';
import { spliceableSocket, spliceUpload } from '../../main/engine/taildrop/receive-splice.ts';
import { sendFile } from '../../main/engine/taildrop/send.ts';
import { open, withApi } from './peerapi-rig.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const addon = kernelCopyAddon();
const skip = addon ? false : 'splice is Linux only (or the addon is not built)';

/** Counts the addon's splice calls that moved bytes (the module's exports object, patched for the test). */
function spyOnSplice(t: { after: (fn: () => void) => void }): { moved: () => number } {
  const a = addon as KernelCopyAddon;
  const real = a.fdSplice;
  let moved = 0;
  a.fdSplice = (...args) => {
    const n = real(...args);
    if (n > 0) moved += n;
    return n;
  };
  t.after(() => {
    a.fdSplice = real;
  });
  return { moved: () => moved };
}

/** The PeerAPI as the receive thread runs it (blocking writes): the splice path. */
const withSpliceApi: typeof withApi = (t, extra, fn) => withApi(t, { blockingWrites: true, ...extra }, fn);

/** Everything the server sends until the connection closes. */
function untilClosed(s: Socket): Promise<string> {
  let text = '';
  s.setEncoding('utf8').on('data', (d: string) => {
    text += d;
  });
  s.on('error', () => {});
  return new Promise((resolve) => s.once('close', () => resolve(text)));
}

/** Writes all of body in pieces, waiting for the socket to drain; after(sent) runs after each piece. */
async function writeBody(s: Socket, body: Buffer, after?: (sent: number) => void): Promise<void> {
  const piece = 1 << 20;
  for (let at = 0; at < body.length && !s.destroyed; at += piece) {
    const more = s.write(body.subarray(at, at + piece));
    after?.(Math.min(body.length, at + piece));
    if (!more) await new Promise((r) => s.once('drain', r).once('close', r));
  }
}

async function settledSize(file: string): Promise<number> {
  let last = -1;
  for (let still = 0, i = 0; still < 3 && i < 200; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const now = (await stat(file).catch(() => ({ size: -1 }))).size;
    still = now === last ? still + 1 : 0;
    last = now;
  }
  return last;
}

describe('PeerAPI receive by splice', { skip, timeout: 60_000 }, () => {
  test('an upload goes by splice, arrives intact and is answered with Connection: close', async (t) => {
    const spy = spyOnSplice(t);
    const data = randomBytes(24 << 20);
    await withSpliceApi(t, {}, async (port, inbox) => {
      const s = await open(port);
      const answer = untilClosed(s);
      s.write(`PUT /v0/put/a.bin HTTP/1.1\r\nHost: peer\r\nContent-Length: ${data.length}\r\n\r\n`);
      await writeBody(s, data);
      const text = await answer; // the server closes the connection after its answer
      assert.match(text, /^HTTP\/1\.1 200/);
      assert.match(text, /\r\nconnection: close\r\n/i);
      assert.equal(sha(await readFile(path.join(inbox.dir, 'a.bin'))), sha(data));
      assert.ok(spy.moved() > data.length / 2, `most of the body spliced (${spy.moved()} bytes)`);
    });
  });

  test('the sender (sendFile) and a resume work against the splice path', async (t) => {
    const data = randomBytes(3 << 20);
    await withSpliceApi(t, {}, async (port, inbox) => {
      const base = `http://127.0.0.1:${port}`;
      const source = { size: data.length, read: async (o: number, n: number) => data.subarray(o, o + n) };
      // A cut first upload: head and 1 MiB, then the sender closes its side.
      const s = await open(port);
      const closed = untilClosed(s);
      s.write(`PUT /v0/put/r.bin HTTP/1.1\r\nHost: peer\r\nContent-Length: ${data.length}\r\n\r\n`);
      s.end(data.subarray(0, 1 << 20));
      await closed;
      assert.equal(await settledSize(inbox.partialPath('r.bin', 'n7')), 1 << 20, 'every byte that came is kept');
      const r = await sendFile({ base, source, name: 'r.bin' });
      assert.equal(r.resumedFrom, 1 << 20);
      assert.equal(sha(await readFile(path.join(inbox.dir, 'r.bin'))), sha(data));
    });
  });

  test('body bytes node read along with the head are written first, in order', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-splice-pre-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const data = randomBytes(8 << 20);
    const file = path.join(dir, 'out.bin');
    let preBuffered = -1;
    let result: Promise<number> | undefined;
    const server = createServer((req, res) => {
      result = (async () => {
        // Let node's parser take the bytes that came with the head into the request's buffer first.
        for (let i = 0; i < 200 && req.readableLength === 0; i++) await new Promise((r) => setTimeout(r, 5));
        preBuffered = req.readableLength;
        const sock = spliceableSocket(req, data.length);
        assert.ok(sock, 'a kernel socket with a declared length: spliceable');
        const fd = openSync(file, 'w');
        try {
          return await spliceUpload(sock, {
            req,
            fd,
            at: 0,
            length: data.length,
            idleMs: 10_000,
            checkpoint: async () => {},
          });
        } finally {
          closeSync(fd);
          res.writeHead(200, { connection: 'close' }).end();
        }
      })();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    const s = await open((server.address() as { port: number }).port);
    const answer = untilClosed(s);
    // The head and the first 200 kB in one write; the rest after the server has read them.
    s.write(
      Buffer.concat([
        Buffer.from(`PUT /x HTTP/1.1\r\nHost: peer\r\nContent-Length: ${data.length}\r\n\r\n`),
        data.subarray(0, 200_000),
      ]),
    );
    for (let i = 0; i < 400 && preBuffered < 0; i++) await new Promise((r) => setTimeout(r, 5));
    await writeBody(s, data.subarray(200_000));
    assert.match(await answer, /^HTTP\/1\.1 200/);
    assert.ok(preBuffered > 0, `node had read ${preBuffered} body bytes before the splice`);
    assert.equal(await result, data.length);
    assert.equal(sha(await readFile(file)), sha(data));
  });

  test('the disk floor crossed mid-body: 507, and the partial is kept for a resume', async (t) => {
    const spy = spyOnSplice(t);
    // The first look (before the body) finds room; every later one a disk someone else filled meanwhile.
    let looks = 0;
    const statfs = async (): Promise<DiskSpace> => {
      looks++;
      return { bsize: 1, blocks: 100 * 2 ** 30, bavail: looks > 1 ? 1 << 20 : 50 * 2 ** 30 };
    };
    await withSpliceApi(t, { statfs }, async (port, inbox, logs) => {
      const total = 6 * DISK_CHECK_BYTES;
      const s = await open(port);
      const answer = untilClosed(s);
      s.write(`PUT /v0/put/huge.bin HTTP/1.1\r\nHost: peer\r\nContent-Length: ${total}\r\n\r\n`);
      void writeBody(s, randomBytes(total));
      const text = await answer;
      assert.match(text, /^HTTP\/1\.1 507/);
      assert.match(text, /not enough free space .*the partial file is kept for resuming/);
      const partial = (await stat(inbox.partialPath('huge.bin', 'n7'))).size;
      assert.ok(partial >= DISK_CHECK_BYTES && partial < total, `partial of ${partial} bytes kept`);
      assert.ok(spy.moved() > 0, 'the body went by splice');
      assert.ok(!(await readdir(inbox.dir)).includes('huge.bin'));
      assert.ok(logs.some((l) => /receiving huge\.bin from sender failed: not enough free space/.test(l)));
    });
  });

  test('a connection cut mid-body keeps what came; a short body is no file', async (t) => {
    const spy = spyOnSplice(t);
    const data = randomBytes(10 << 20);
    await withSpliceApi(t, {}, async (port, inbox) => {
      const s = await open(port);
      const closed = untilClosed(s);
      s.write(`PUT /v0/put/cut.bin HTTP/1.1\r\nHost: peer\r\nContent-Length: ${2 * data.length}\r\n\r\n`);
      await writeBody(s, data);
      s.end(); // the sender goes away halfway
      await closed;
      assert.equal(await settledSize(inbox.partialPath('cut.bin', 'n7')), data.length, 'every byte that came');
      const kept = await readFile(inbox.partialPath('cut.bin', 'n7'));
      assert.equal(sha(kept), sha(data));
      assert.ok(spy.moved() > 0, 'the body went by splice');
      assert.deepEqual(await readdir(inbox.dir), [path.basename(inbox.partialPath('cut.bin', 'n7'))]);
    });
  });

  test('native: bad descriptors and arguments answer an errno or a TypeError, never a crash', () => {
    const a = addon as KernelCopyAddon;
    const pipe = a.fdPipe();
    assert.ok(Array.isArray(pipe), 'a pipe');
    const [r, w] = pipe as [number, number];
    assert.equal(a.fdSplice(1 << 30, r, w, 1 << 30, 0, 10, 10), -E.EBADF, 'no such socket');
    const f = openSync(process.execPath, 'r');
    assert.ok(a.fdSplice(f, r, w, f, 0, 10, 10) < 0, 'a read-only file as the target');
    closeSync(f);
    assert.ok(a.fdSplice(1 << 30, 1 << 30, 1 << 30, 1 << 30, 0, 10, 10) < 0, 'no pipe');
    assert.throws(() => a.fdSplice(-1, r, w, 0, 0, 1, 1), TypeError);
    assert.throws(() => a.fdSplice(0, r, w, 0, 0, 1, 10 ** 9), TypeError);
    closeSync(r);
    closeSync(w);
  });
});
