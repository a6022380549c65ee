// The PeerAPI's upload writer: several writes in flight land every byte at its offset; reading pauses only when
// every write slot is taken and a batch is full; a failed write fails the upload, and what came before a cut is
// kept for the resume.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { UploadWriter } from '../../main/engine/taildrop/upload-writer.ts';

async function tempFile(t: { after: (fn: () => Promise<void>) => void }, content = Buffer.alloc(0)) {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-upload-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'partial');
  await writeFile(f, content);
  return f;
}

/** Chunks of 1–70 KiB, as a socket hands them over. */
function chunksOf(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < body.length; i++) {
    const n = Math.min(body.length - at, 1024 + ((i * 7919) % (70 * 1024)));
    out.push(body.subarray(at, at + n));
    at += n;
  }
  return out;
}

test('every byte lands at its offset, after the part already held', async (t) => {
  const held = randomBytes(1000);
  const f = await tempFile(t, held);
  const body = randomBytes(9 * (1 << 20) + 321);
  const fh = await open(f, 'r+');
  const w = new UploadWriter(fh, held.length);
  for (const c of chunksOf(body)) await w.add(c);
  await w.finish();
  await fh.close();
  assert.ok((await readFile(f)).equals(Buffer.concat([held, body])));
});

test('reading pauses only when every write slot is taken and a batch is full', async () => {
  const started: Array<() => void> = [];
  const slow = {
    writev: (bufs: Buffer[]) =>
      new Promise((resolve) => started.push(() => resolve({ bytesWritten: bufs.reduce((n, b) => n + b.length, 0) }))),
  } as unknown as FileHandle;
  const w = new UploadWriter(slow, 0);
  const chunk = Buffer.alloc(64 << 10);
  let paused: Promise<void> | undefined;
  let added = 0;
  for (let i = 0; i < 200 && !paused; i++) {
    const p = w.add(chunk);
    const settled = await Promise.race([p.then(() => true), new Promise((r) => setImmediate(() => r(false)))]);
    if (settled) added++;
    else paused = p;
  }
  assert.ok(paused, 'add() waits at some point');
  assert.equal(started.length, 4, 'four writes in flight');
  assert.ok(added * chunk.length <= 6 << 20, `at most ~5 MiB held: ${added} chunks taken`);
  started.shift()?.();
  await paused; // a slot freed: reading goes on
  let finished = false;
  const finishing = w.finish().then(() => {
    finished = true;
  });
  for (let i = 0; i < 1000 && !finished; i++) {
    for (const done of started.splice(0)) done();
    await new Promise((r) => setImmediate(r));
  }
  await finishing;
});

test('a failed write fails the upload: add() or finish() rejects with it', async (t) => {
  const f = await tempFile(t);
  const fh = await open(f, 'r'); // not open for writing: every write fails with EBADF
  t.after(() => fh.close());
  const w = new UploadWriter(fh, 0);
  const chunk = Buffer.alloc(64 << 10);
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 100; i++) await w.add(chunk);
      await w.finish();
    })(),
    { code: 'EBADF' },
  );
  await w.abandon(); // never rejects
});

test('abandon() after a cut keeps what came, for the resume', async (t) => {
  const f = await tempFile(t);
  const fh = await open(f, 'r+');
  const w = new UploadWriter(fh, 0);
  const body = randomBytes(3 * (1 << 20) + 5);
  for (const c of chunksOf(body)) await w.add(c);
  await w.abandon();
  await fh.close();
  assert.ok((await readFile(f)).equals(body));
});
