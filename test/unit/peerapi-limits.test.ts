// The PeerAPI against callers that hold on (issue 12, finding 3): an upload stalled after one byte is closed after
// the idle timeout and its partial kept for resume; one address cannot open more than its share of connections;
// an upload that would push the inbox's disk under the free-space floor is refused with 507, before its body and
// during it; and the Range header stays strict.
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DISK_CHECK_BYTES, type DiskSpace, diskFloor, parseRangeHeader } from '../../main/engine/taildrop/peerapi.ts';
import { open, withApi } from './peerapi-rig.ts';

const GiB = 1 << 30;

/** Everything the server sends until it closes, and how long that took. */
function untilClosed(s: Socket): Promise<{ text: string; ms: number }> {
  const started = performance.now();
  let text = '';
  s.setEncoding('utf8').on('data', (d: string) => {
    text += d;
  });
  s.on('error', () => {});
  return new Promise((resolve) => s.once('close', () => resolve({ text, ms: performance.now() - started })));
}

/** One raw request (headers and an optional body) and the whole answer, the connection closed by us after it. */
async function exchange(port: number, head: string, body = ''): Promise<{ status: number; text: string }> {
  const s = await open(port);
  const done = untilClosed(s);
  s.write(`${head}\r\nHost: peer\r\nConnection: close\r\n\r\n${body}`);
  const { text } = await done;
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cond(), 'in time');
}

const fakeDisk = (free: () => number, total = 100 * GiB) => {
  const calls = { n: 0 };
  const statfs = async (): Promise<DiskSpace> => {
    calls.n++;
    return { bsize: 1, blocks: total, bavail: free() };
  };
  return { statfs, calls };
};

describe('PeerAPI idle timeout', { timeout: 20_000 }, () => {
  test('an upload stalled after one byte is closed after the idle timeout; the partial resumes', async (t) => {
    await withApi(t, { idleTimeoutMs: 400 }, async (port, inbox, logs) => {
      const s = await open(port);
      const closed = untilClosed(s);
      s.write('PUT /v0/put/f.bin HTTP/1.1\r\nHost: peer\r\nContent-Length: 10\r\n\r\nA');
      const { ms } = await closed;
      assert.ok(ms >= 350 && ms < 5_000, `closed by the server after ${Math.round(ms)} ms`);
      await until(() => logs.some((l) => /receiving f\.bin from sender failed/.test(l)));
      assert.equal((await stat(inbox.partialPath('f.bin', 'n7'))).size, 1, 'the byte received is kept');
      // the name is free again (no 409) and the rest resumes from the byte it has
      const r = await exchange(port, 'PUT /v0/put/f.bin HTTP/1.1\r\nRange: bytes=1-\r\nContent-Length: 9', 'BCDEFGHIJ');
      assert.equal(r.status, 200, r.text);
      assert.equal(await readFile(path.join(inbox.dir, 'f.bin'), 'utf8'), 'ABCDEFGHIJ');
    });
  });

  test('a slow upload that keeps sending outlives the idle timeout', async (t) => {
    await withApi(t, { idleTimeoutMs: 400 }, async (port, inbox) => {
      const s = await open(port);
      const closed = untilClosed(s);
      s.write('PUT /v0/put/slow.txt HTTP/1.1\r\nHost: peer\r\nContent-Length: 8\r\nConnection: close\r\n\r\n');
      for (const c of 'abcdefgh') {
        await new Promise((r) => setTimeout(r, 150)); // 1.2 s in all, three times the idle timeout
        s.write(c);
      }
      const { text } = await closed;
      assert.match(text, /^HTTP\/1\.1 200/);
      assert.equal(await readFile(path.join(inbox.dir, 'slow.txt'), 'utf8'), 'abcdefgh');
    });
  });
});

describe('PeerAPI connection cap', { timeout: 20_000 }, () => {
  test('one address holds at most its cap of connections; a closed one makes room', async (t) => {
    await withApi(t, { maxConnectionsPerPeer: 3 }, async (port) => {
      const held = [await open(port), await open(port), await open(port)];
      for (const s of held) s.on('error', () => {});
      await new Promise((r) => setTimeout(r, 100));
      const extra = await open(port);
      const { text, ms } = await untilClosed(extra);
      assert.equal(text, '', 'closed without a word');
      assert.ok(ms < 2_000);
      held[0].destroy();
      await new Promise((r) => setTimeout(r, 100));
      const r = await exchange(port, 'GET /v0/put/ HTTP/1.1');
      assert.equal(r.status, 200, 'room again after one closed');
      for (const s of held) s.destroy();
    });
  });
});

/**
 * A PUT of `total` bytes streamed as fast as the socket takes them, and the answer: the request fails the test only
 * when the connection fails before any answer arrived (afterwards the server may close while we still write).
 */
function streamedPut(port: number, name: string, total: number, onSent?: (sent: number) => void) {
  const chunk = Buffer.alloc(1 << 20, 0x61);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: `/v0/put/${name}`, agent: false });
    req.setHeader('host', 'peer');
    req.setHeader('content-length', total);
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', (e) => {
      if (!answered) reject(new Error(`no answer before the connection failed: ${e.message}`));
    });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        onSent?.(sent);
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

describe('PeerAPI answers to a body still coming', { timeout: 20_000 }, () => {
  test('an upload refused before its body is read: the sender reads the answer, not a reset', async (t) => {
    await withApi(t, { fileSharing: () => false }, async (port, inbox) => {
      for (let i = 0; i < 5; i++) {
        const answer = await streamedPut(port, `refused-${i}.bin`, 32 << 20);
        assert.equal(answer.status, 403);
        assert.match(answer.body, /Taildrop disabled/);
      }
      assert.deepEqual(await readdir(inbox.dir), []);
    });
  });
});

/** One PUT of body (from offset `range`, when given); its status. */
function rawPut(port: number, name: string, body: Buffer, range?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { host: 'peer', 'content-length': body.length };
    if (range) headers.range = range;
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: `/v0/put/${name}`, agent: false, headers });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('PeerAPI blocking writes', { timeout: 20_000 }, () => {
  test('an upload written with blocking calls lands intact, after a resumed part', async (t) => {
    await withApi(t, { blockingWrites: true }, async (port, inbox) => {
      const body = Buffer.from(Array.from({ length: 9 * (1 << 20) + 77 }, (_, i) => (i * 31) & 0xff));
      const partial = inbox.partialPath('b.bin', 'n7');
      await writeFile(partial, body.subarray(0, 1000));
      const rest = await rawPut(port, 'b.bin', body.subarray(1000), 'bytes=1000-');
      assert.equal(rest, 200);
      assert.ok((await readFile(path.join(inbox.dir, 'b.bin'))).equals(body));
    });
  });
});

describe('PeerAPI disk floor', { timeout: 20_000 }, () => {
  test('the floor is 5 % of the filesystem, at most 1 GiB', () => {
    assert.equal(diskFloor(10 * GiB), Math.floor(0.5 * GiB));
    assert.equal(diskFloor(1000 * GiB), GiB);
    assert.equal(diskFloor(0), 0);
  });

  test('an upload whose Content-Length would cross the floor: 507 before any byte is stored', async (t) => {
    const floor = diskFloor(100 * GiB); // 1 GiB
    const { statfs } = fakeDisk(() => floor + 1000);
    await withApi(t, { statfs }, async (port, inbox) => {
      const ok = await exchange(port, 'PUT /v0/put/fits.txt HTTP/1.1\r\nContent-Length: 900', 'x'.repeat(900));
      assert.equal(ok.status, 200, 'leaves 100 bytes above the floor');
      const big = await exchange(port, 'PUT /v0/put/big.bin HTTP/1.1\r\nContent-Length: 2000', 'y'.repeat(2000));
      assert.equal(big.status, 507);
      assert.match(
        big.text,
        /not enough free space on the receiving disk: 1\.0 GiB free, 2000 bytes to come and 1\.0 GiB kept free\n/,
      );
      assert.deepEqual(await readdir(inbox.dir), ['fits.txt'], 'nothing of big.bin');
    });
  });

  for (const blockingWrites of [false, true]) {
    test(`a body that would cross the floor midway stops with 507; the partial is kept for resume${blockingWrites ? ' (blocking writes, as in the receive thread)' : ''}`, async (t) => {
      let full = false;
      const { statfs, calls } = fakeDisk(() => (full ? 1 << 20 : 50 * GiB));
      await withApi(t, { statfs, blockingWrites }, async (port, inbox, logs) => {
        const total = 4 * DISK_CHECK_BYTES;
        const answer = await streamedPut(port, 'huge.bin', total, (sent) => {
          if (sent === DISK_CHECK_BYTES) full = true; // someone else filled the disk meanwhile
        });
        assert.equal(answer.status, 507);
        assert.match(answer.body, /not enough free space .*the partial file is kept for resuming/);
        assert.ok(calls.n >= 2, 'checked again during the body');
        const partial = (await stat(inbox.partialPath('huge.bin', 'n7'))).size;
        assert.ok(partial >= DISK_CHECK_BYTES && partial < total, `partial of ${partial} bytes kept`);
        assert.ok(!(await readdir(inbox.dir)).includes('huge.bin'));
        assert.ok(logs.some((l) => /receiving huge\.bin from sender failed: not enough free space/.test(l)));
      });
    });
  }

  test('the real statfs: a Content-Length larger than any disk here is refused with 507', async (t) => {
    await withApi(t, {}, async (port, inbox) => {
      const r = await exchange(port, `PUT /v0/put/x.bin HTTP/1.1\r\nContent-Length: ${2 ** 52}`);
      assert.equal(r.status, 507, r.text);
      assert.deepEqual(await readdir(inbox.dir), []);
    });
  });
});

describe('PeerAPI Range header', () => {
  test('only bytes=N- with N a safe integer', () => {
    assert.equal(parseRangeHeader('bytes=0-'), 0);
    assert.equal(parseRangeHeader('bytes=65536-'), 65536);
    assert.equal(parseRangeHeader(`bytes=${Number.MAX_SAFE_INTEGER}-`), Number.MAX_SAFE_INTEGER);
    for (const bad of [
      `bytes=${Number.MAX_SAFE_INTEGER + 1}-`,
      'bytes=99999999999999999999-',
      'bytes=-5',
      'bytes=0-10',
      'bytes=1-,5-',
      'bytes= 1-',
      'bytes=1- ',
      'bytes=+1-',
      'bytes=1e3-',
      'bytes=0x10-',
      'bytes=-',
      'items=1-',
      'BYTES=1-',
      '',
    ]) {
      assert.equal(parseRangeHeader(bad), undefined, bad);
    }
  });

  test('an offset beyond a safe integer is a 400, nothing stored', async (t) => {
    await withApi(t, {}, async (port, inbox) => {
      const r = await exchange(
        port,
        'PUT /v0/put/r.bin HTTP/1.1\r\nRange: bytes=99999999999999999999-\r\nContent-Length: 0',
      );
      assert.equal(r.status, 400);
      assert.match(r.text, /invalid Range header/);
      assert.deepEqual(await readdir(inbox.dir), []);
    });
  });
});
