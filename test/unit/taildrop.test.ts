// Taildrop below the lab: file-name rules, and the PeerAPI with the sender on loopback — dedupe, numbered names,
// resume after a cut, 409 for a concurrent upload of the same name, a bad Range, and a full disk (a small tmpfs).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { ByteSource } from '../../main/engine/protocol.ts';
import { Inbox } from '../../main/engine/taildrop/inbox.ts';
import { invalidNameReason, numberedName } from '../../main/engine/taildrop/names.ts';
import { sendFile, sendFileWithRetry, TaildropSendError } from '../../main/engine/taildrop/send.ts';
import { SendThread } from '../../main/engine/taildrop/send-thread.ts';
import { withPeerApi } from './peerapi-rig.ts';
import { startStubReceiver } from './stub-receiver.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A file's bytes as the source a caller would offer (read once, served from memory). */
async function fileBytes(file: string): Promise<ByteSource> {
  const b = await readFile(file);
  return { size: b.length, read: async (offset, length) => b.subarray(offset, offset + length) };
}

describe('Taildrop names', () => {
  test('ordinary names pass; hostile ones are refused with a reason', () => {
    for (const ok of ['photo.jpg', 'résumé.pdf', 'a (1).tar.gz', '日本語.txt', 'with space.txt', 'x'.repeat(255)]) {
      assert.equal(invalidNameReason(ok), undefined, ok);
    }
    const bad = [
      '',
      '.',
      '..',
      '../x',
      'a/b',
      'a\\b',
      '/abs',
      'nul\0',
      'bell\x07',
      'tab\tx',
      'CON',
      'com1.txt',
      'lpt9',
      ' x',
      'x ',
      'x.partial',
      'x.deleted',
      'a:b',
      'a*b',
      'a"b',
      'a<b',
      'a|b',
      'x'.repeat(256),
      'é'.repeat(128),
      'dot.',
    ];
    for (const name of bad) assert.notEqual(invalidNameReason(name), undefined, JSON.stringify(name));
  });

  test('numbered names keep the whole extension run', () => {
    assert.equal(numberedName('Foo.jpg', 1), 'Foo (1).jpg');
    assert.equal(numberedName('a.tar.gz', 2), 'a (2).tar.gz');
    assert.equal(numberedName('README', 1), 'README (1)');
    assert.equal(numberedName('.bashrc', 1), '.bashrc (1)');
  });
});

/** A PUT that sends `send` of `declared` bytes and then cuts the connection: an interrupted transfer. */
function cutPut(base: string, name: string, declared: number, send: Uint8Array): Promise<void> {
  const u = new URL(base);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname, () => {
      s.write(`PUT /v0/put/${encodeURIComponent(name)} HTTP/1.1\r\nHost: peer\r\nContent-Length: ${declared}\r\n\r\n`);
      s.write(send, () => setTimeout(() => s.destroy(), 200));
    });
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

describe('PeerAPI and sender on loopback', () => {
  test('send, the same file again (deduplicated), other content under the same name (numbered)', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-td-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const a = randomBytes(300_000);
    const b = randomBytes(1000);
    await writeFile(path.join(dir, 'a.bin'), a);
    await writeFile(path.join(dir, 'b.bin'), b);
    await withPeerApi(path.join(dir, 'state'), async (base, inbox) => {
      await sendFile({ base, source: await fileBytes(path.join(dir, 'a.bin')), name: 'x.tar.gz' });
      await sendFile({ base, source: await fileBytes(path.join(dir, 'a.bin')), name: 'x.tar.gz' });
      await sendFile({ base, source: await fileBytes(path.join(dir, 'b.bin')), name: 'x.tar.gz' });
      assert.deepEqual((await readdir(inbox.dir)).sort(), ['x (1).tar.gz', 'x.tar.gz']);
      assert.equal(sha(await readFile(path.join(inbox.dir, 'x.tar.gz'))), sha(a));
      assert.equal(sha(await readFile(path.join(inbox.dir, 'x (1).tar.gz'))), sha(b));
      assert.equal((await stat(inbox.dir)).mode & 0o777, 0o700);
    });
  });

  test('a cut transfer is resumed: only the missing blocks are sent, the result is intact', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-td-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const data = randomBytes(1 << 20);
    await writeFile(path.join(dir, 'big.bin'), data);
    await withPeerApi(path.join(dir, 'state'), async (base, inbox) => {
      await cutPut(base, 'big.bin', data.length, data.subarray(0, 400_000));
      // The server writes what came before the cut after the socket closes: wait until the partial stops growing.
      let partial = await stat(inbox.partialPath('big.bin', '7'));
      for (let still = 0, i = 0; still < 3 && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const now = await stat(inbox.partialPath('big.bin', '7'));
        still = now.size === partial.size ? still + 1 : 0;
        partial = now;
      }
      assert.ok(partial.size > 0 && partial.size <= 400_000, `partial kept: ${partial.size} bytes`);
      assert.equal(partial.mode & 0o777, 0o600);
      const r = await sendFile({ base, source: await fileBytes(path.join(dir, 'big.bin')), name: 'big.bin' });
      // every block the receiver hashed matches (the last one short), so all it holds is skipped
      assert.equal(r.resumedFrom, partial.size, 'the bytes the receiver already had are not sent again');
      assert.equal(sha(await readFile(path.join(inbox.dir, 'big.bin'))), sha(data));
      assert.deepEqual(await readdir(inbox.dir), ['big.bin'], 'no partial left');
    });
  });

  test('cancel: the send stops with a clear error and the receiver keeps the partial for a later resume', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-td-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // Progress is reported at most every 250 ms and a fresh machine moves 64 MiB over loopback faster than that, so
    // the file is large enough for the second report to come while the upload is still running.
    await writeFile(path.join(dir, 'big.bin'), randomBytes(256 << 20));
    await withPeerApi(path.join(dir, 'state'), async (base, inbox) => {
      const ac = new AbortController();
      let progressed = 0;
      const sending = sendFile({
        base,
        source: await fileBytes(path.join(dir, 'big.bin')),
        name: 'big.bin',
        signal: ac.signal,
        onProgress: (p) => {
          progressed = p.sent;
          if (p.sent > 4 << 20) ac.abort();
        },
      });
      await assert.rejects(sending, (e: unknown) => e instanceof TaildropSendError && /cancelled/.test(e.message));
      assert.ok(progressed > 0);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(await readdir(inbox.dir), ['big.bin.7.partial'], 'no file, only the partial');
    });
  });

  test('409 for a second upload of the same name while one runs; 400 for a bad Range', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-td-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'f.txt'), 'hello');
    await withPeerApi(path.join(dir, 'state'), async (base) => {
      const u = new URL(base);
      const slow = connect(Number(u.port), u.hostname);
      await new Promise<void>((r) => slow.once('connect', () => r()));
      slow.write('PUT /v0/put/f.txt HTTP/1.1\r\nHost: peer\r\nContent-Length: 1000\r\n\r\nabc');
      await new Promise((r) => setTimeout(r, 200));
      await assert.rejects(
        sendFile({ base, source: await fileBytes(path.join(dir, 'f.txt')), name: 'f.txt' }),
        (e: unknown) => {
          return e instanceof TaildropSendError && e.status === 409;
        },
      );
      slow.destroy();
      const status = await new Promise<number>((resolve) => {
        const s = connect(Number(u.port), u.hostname, () => {
          s.write('PUT /v0/put/g.txt HTTP/1.1\r\nHost: peer\r\nRange: bytes=0-10\r\nContent-Length: 0\r\n\r\n');
        });
        s.setEncoding('utf8').on('data', (d: string) => {
          resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(d)?.[1]));
          s.destroy();
        });
      });
      assert.equal(status, 400);
    });
  });

  test('a disk too small for the file: a clear 507 before anything is stored', async (t) => {
    if (process.getuid?.() !== 0) {
      if (process.env.CI === 'true') throw new Error('the full-disk test mounts a tmpfs: run as root');
      t.skip('needs root to mount a small tmpfs');
      return;
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-td-'));
    const mnt = path.join(dir, 'small');
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    t.after(async () => {
      execFileSync('umount', [mnt]);
      await rm(dir, { recursive: true, force: true });
    });
    const data = randomBytes(1 << 20);
    await writeFile(path.join(dir, 'big.bin'), data);
    await withPeerApi(mnt, async (base, inbox) => {
      await assert.rejects(
        sendFile({ base, source: await fileBytes(path.join(dir, 'big.bin')), name: 'big.bin' }),
        (e: unknown) => e instanceof TaildropSendError && e.status === 507 && /not enough free space/.test(e.message),
      );
      const left = await readdir(inbox.dir).catch(() => []);
      assert.deepEqual(left, [], 'refused before a byte was stored');
    });
  });
});

describe('Taildrop upkeep', () => {
  test('a partial is opened at the offset asked: from zero afresh, past its end refused, shorter kept', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-partial-'));
    try {
      const inbox = new Inbox(dir);
      await inbox.ensure();
      const file = inbox.partialPath('p.bin', '7');
      await writeFile(file, 'abcdefgh');
      let fh = await inbox.openPartial('p.bin', '7', 3); // a resume: what came before the offset stays
      await fh.write(Buffer.from('XY'), 0, 2, 3);
      await fh.close();
      assert.equal(await readFile(file, 'utf8'), 'abcXY');
      fh = await inbox.openPartial('p.bin', '7', 5); // at its end: nothing cut
      await fh.close();
      assert.equal(await readFile(file, 'utf8'), 'abcXY');
      fh = await inbox.openPartial('p.bin', '7', 0); // a restart: an empty file, owner-only
      await fh.write(Buffer.from('z'), 0, 1, 0);
      await fh.close();
      assert.equal(await readFile(file, 'utf8'), 'z');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      await assert.rejects(inbox.openPartial('p.bin', '7', 2), RangeError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('partials untouched for an hour are swept; fresh partials and complete files stay', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-sweep-'));
    try {
      const inbox = new Inbox(dir);
      await inbox.ensure();
      await writeFile(inbox.partialPath('old.bin', '7'), 'x');
      await writeFile(inbox.partialPath('new.bin', '7'), 'y');
      await writeFile(path.join(inbox.dir, 'done.txt'), 'z');
      const hourAgo = (Date.now() - 3601_000) / 1000;
      await utimes(inbox.partialPath('old.bin', '7'), hourAgo, hourAgo);
      await utimes(path.join(inbox.dir, 'done.txt'), hourAgo, hourAgo);
      assert.deepEqual(await inbox.sweepPartials(3600_000), ['old.bin.7.partial']);
      assert.deepEqual((await readdir(inbox.dir)).sort(), ['done.txt', 'new.bin.7.partial']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a send the peer resets is retried and resumes; a peer that keeps resetting gives a clear error', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-retry-'));
    const body = randomBytes(300_000);
    await writeFile(path.join(dir, 'f.bin'), body);
    let puts = 0;
    let resetsLeft = 1;
    let got = Buffer.alloc(0);
    const server = createServer((req, res) => {
      if (req.method === 'GET') return void res.writeHead(404).end();
      puts++;
      if (resetsLeft-- > 0) return void req.socket.destroy();
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        got = Buffer.concat(parts);
        res.writeHead(200).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const logs: string[] = [];
    try {
      const o = { base, source: await fileBytes(path.join(dir, 'f.bin')), name: 'f.bin' };
      const r = await sendFileWithRetry(o, { delayMs: 10, log: (l) => logs.push(l) });
      assert.equal(r.total, body.length);
      assert.equal(puts, 2);
      assert.ok(got.equals(body), 'the second attempt delivered the file');
      assert.match(logs[0], /retrying \(1\/3\)/);
      resetsLeft = 10;
      puts = 0;
      await assert.rejects(sendFileWithRetry(o, { delayMs: 10 }), /kept resetting the connection \(3 attempts\)/);
      assert.equal(puts, 3);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Taildrop resume query', () => {
  test('a resume query that gets no answer fails the attempt; the retry asks again before sending', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-noanswer-'));
    await writeFile(path.join(dir, 'f.bin'), randomBytes(100_000));
    let gets = 0;
    let puts = 0;
    const server = createServer((req, res) => {
      if (req.method === 'GET') {
        gets++;
        if (gets === 1) return void req.socket.destroy(); // no answer: the path is not back yet
        return void res.writeHead(404).end();
      }
      puts++;
      req.resume();
      req.on('end', () => res.writeHead(200).end('{}'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const logs: string[] = [];
    try {
      const r = await sendFileWithRetry(
        { base, source: await fileBytes(path.join(dir, 'f.bin')), name: 'f.bin' },
        { delayMs: 10, log: (l) => logs.push(l) },
      );
      assert.equal(r.total, 100_000);
      assert.deepEqual({ gets, puts }, { gets: 2, puts: 1 }, 'nothing was sent before the peer answered the query');
      assert.equal(logs.length, 1);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Taildrop send thread', () => {
  test('sends in its own thread with progress here; cancel stops it; a missing file keeps its error code', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-send-thread-'));
    const body = randomBytes(3 << 20);
    await writeFile(path.join(dir, 'f.bin'), body);
    const receiver = await startStubReceiver();
    const base = receiver.base;
    const thread = new SendThread();
    try {
      const progress: number[] = [];
      const r = await thread.send({
        base,
        source: await fileBytes(path.join(dir, 'f.bin')),
        name: 'f.bin',
        onProgress: (p) => progress.push(p.sent),
      });
      assert.equal(r.total, body.length);
      assert.equal(thread.threaded, true, 'the send ran in the send thread, not here');
      assert.ok(receiver.got().equals(body), 'the receiver got the file');
      assert.ok(progress.length > 0 && progress[progress.length - 1] === body.length, `progress ${progress}`);

      receiver.hold(); // a receiver that stops reading: the send stays in flight until cancelled
      const ac = new AbortController();
      const pending = thread.send({
        base,
        source: await fileBytes(path.join(dir, 'f.bin')),
        name: 'f.bin',
        signal: ac.signal,
      });
      setTimeout(() => ac.abort(), 200);
      await assert.rejects(pending, /cancelled/);

      const unreadable = { size: 10, read: () => Promise.reject(new Error('the disk is gone')) };
      await assert.rejects(thread.send({ base, source: unreadable, name: 'gone.bin' }), /the disk is gone/);
    } finally {
      await thread.close();
      receiver.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
