// The PeerAPI's connection intake (issue 14, h2c parity): the sniff that tells HTTP/2's preface from HTTP/1.1 —
// whole, split into 1-byte chunks, diverging part-way, never coming, hostile garbage — with every sniffed byte put
// back; then the whole PeerAPI asked the same questions over HTTP/1.1 and h2c (node:http2 as the client, over real
// loopback TCP, over the userspace stack's sockets, and through the receive thread) with the same answers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type IncomingHttpHeaders, request } from 'node:http';
import { type ClientHttp2Session, connect as http2Connect, type SecureClientSessionOptions } from 'node:http2';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import type { TcpSocket } from '../../main/engine/netstack/tcp-socket.ts';
import { Inbox } from '../../main/engine/taildrop/inbox.ts';
import { type Caller, PeerApi, type PeerApiOptions, peerApiPort } from '../../main/engine/taildrop/peerapi.ts';
import {
  ensureIdleTimer,
  H2_PREFACE,
  PeerApiIntake,
  type SniffResult,
  sniffProtocol,
} from '../../main/engine/taildrop/peerapi-intake.ts';
import { ReceiveThread } from '../../main/engine/taildrop/receive-thread.ts';
import { makeLivePair, V4, V6 } from './netstack-link.ts';

/** A stream whose bytes the test pushes one chunk at a time. */
function fedStream(): Duplex {
  return new Duplex({
    read() {},
    write(_c, _e, cb) {
      cb();
    },
  });
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Feeds chunks, recording after which one the sniff decided; then reads back everything the stream holds. */
async function sniff(chunks: Buffer[], idleMs = 5_000) {
  const s = fedStream();
  let result: SniffResult | undefined;
  let decidedAfter = -1;
  sniffProtocol(s, idleMs, (p) => {
    result = p;
  });
  for (let i = 0; i < chunks.length; i++) {
    s.push(chunks[i]);
    await tick();
    if (result && decidedAfter < 0) decidedAfter = i;
  }
  const rest: Buffer[] = [];
  let c: Buffer | null = s.read() as Buffer | null;
  while (c) {
    rest.push(c);
    c = s.read() as Buffer | null;
  }
  return { result, decidedAfter, bytes: Buffer.concat(rest), destroyed: s.destroyed };
}

describe('the sniff', () => {
  test('the whole preface in one chunk: h2, every byte put back', async () => {
    const all = Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
    const r = await sniff([all]);
    assert.equal(r.result, 'h2');
    assert.ok(r.bytes.equals(all));
  });

  test('the preface in 1-byte chunks: undecided until its last byte, then h2 with the bytes in order', async () => {
    const chunks = [...H2_PREFACE].map((b) => Buffer.from([b]));
    const r = await sniff([...chunks, Buffer.from('after')]);
    assert.equal(r.result, 'h2');
    assert.equal(r.decidedAfter, H2_PREFACE.length - 1);
    assert.ok(r.bytes.equals(Buffer.concat([H2_PREFACE, Buffer.from('after')])));
  });

  test('a prefix that diverges from the preface goes to HTTP/1.1 where it diverges', async () => {
    const text = Buffer.from('PRI * HTTP/1.1\r\n\r\n');
    const r = await sniff([...text].map((b) => Buffer.from([b])));
    assert.equal(r.result, 'http1');
    assert.equal(r.decidedAfter, 'PRI * HTTP/'.length, 'decided at the first byte that differs');
    assert.ok(r.bytes.equals(text));
    const get = await sniff([Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
    assert.equal(get.result, 'http1');
    assert.equal(get.bytes.toString(), 'GET / HTTP/1.1\r\n\r\n');
  });

  test('no byte within the idle timeout: destroyed, undecided; a stream ended mid-preface too', async () => {
    const s = fedStream();
    let decided = false;
    sniffProtocol(s, 100, () => {
      decided = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(decided, false);
    assert.equal(s.destroyed, true);
    const half = fedStream();
    sniffProtocol(half, 5_000, () => {
      decided = true;
    });
    half.push(H2_PREFACE.subarray(0, 10));
    half.push(null);
    await tick();
    await tick();
    assert.equal(decided, false);
    assert.equal(half.destroyed, true);
  });

  test('hostile garbage: decided after at most the preface length, nothing lost', async () => {
    for (let seed = 0; seed < 50; seed++) {
      const junk = randomBytes(1 + (seed % 7) * 13);
      if (junk[0] === 0x50) junk[0] = 0x51; // 'P' would follow the preface a little longer; covered above
      const r = await sniff([junk]);
      assert.equal(r.result, 'http1');
      assert.ok(r.bytes.equals(junk));
    }
  });
});

const CALLER: Caller = {
  senderId: '7',
  name: 'laptop.tailnet.test',
  mayFileSend: true,
  userName: 'Ann',
  sameUser: true,
  sameUntaggedUser: true,
};

async function withApi(
  t: { after(f: () => unknown): void },
  allowed: string,
  extra: Partial<PeerApiOptions> = {},
): Promise<{ api: PeerApi; dir: string }> {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-h2c-'));
  const inbox = new Inbox(stateDir);
  const dir = inbox.dir;
  await inbox.ensure();
  const api = new PeerApi({
    inbox,
    identify: (ip) => (ip === allowed ? CALLER : undefined),
    fileSharing: () => true,
    log: () => {},
    ...extra,
  });
  t.after(async () => {
    api.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  return { api, dir };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Ask {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

/** Over HTTP/1.1, one connection per question (createConnection: a netstack socket, or loopback TCP). */
function ask1(port: number, q: Ask, createConnection?: () => Duplex): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: '127.0.0.1',
        port,
        method: q.method,
        path: q.path,
        headers: { host: 'peer', ...q.headers },
        ...(createConnection ? { createConnection: createConnection as () => Socket } : { agent: false }),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    r.setTimeout(5_000, () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end(q.body);
  });
}

/** An h2c session; the PeerAPI closing under it (the tests' cleanup) is no error of the test's. */
function h2connect(url: string, o: SecureClientSessionOptions = {}): ClientHttp2Session {
  const session = http2Connect(url, o);
  session.on('error', () => {});
  return session;
}

/** Over h2c, on one session. */
function ask2(session: ClientHttp2Session, q: Ask): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': q.method, ':path': q.path, ':authority': 'peer', ...q.headers });
    let headers: IncomingHttpHeaders = {};
    let status = 0;
    let body = '';
    s.on('response', (h) => {
      status = Number(h[':status']);
      headers = h as IncomingHttpHeaders;
    });
    s.setEncoding('utf8').on('data', (c: string) => {
      body += c;
    });
    s.on('end', () => resolve({ status, headers, body }));
    s.on('error', reject);
    s.setTimeout(5_000, () => s.close());
    s.end(q.body);
  });
}

const KEY_HEADERS = ['content-type', 'content-length', 'x-content-type-options', 'content-security-policy'];
const pick = (a: Answer) => ({
  status: a.status,
  body: a.body,
  ...Object.fromEntries(KEY_HEADERS.map((h) => [h, a.headers[h]])),
});

/** Questions for both protocols: pages, errors, Taildrop with a resume, block hashes, the listing. */
function questions(tag: string): Ask[] {
  const part = Buffer.from('hello, ');
  return [
    { method: 'GET', path: '/' },
    { method: 'HEAD', path: '/' },
    { method: 'GET', path: '/', headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64)' } },
    { method: 'GET', path: '/nope' },
    { method: 'GET', path: '/v0/env' },
    { method: 'GET', path: '/v0/drive/' },
    { method: 'GET', path: '/', headers: { origin: 'http://evil.example' } },
    { method: 'GET', path: '/', headers: { host: 'evil.example:80', ...{} } },
    { method: 'POST', path: '/v0/wol?mac=nonsense' },
    { method: 'GET', path: '/v0/wol' },
    { method: 'DELETE', path: `/v0/put/${tag}.txt` },
    { method: 'PUT', path: '/v0/put/..' },
    { method: 'PUT', path: `/v0/put/${tag}.txt`, headers: { range: 'bytes=1-2' }, body: part },
    { method: 'PUT', path: `/v0/put/${tag}.txt`, body: Buffer.from('complete file\n') },
    { method: 'GET', path: `/v0/put/${tag}-none.txt` },
    { method: 'GET', path: '/v0/put/' },
  ];
}

/** h2 puts Host in :authority; a "host" entry is moved there so both protocols ask the same. */
function asH2(q: Ask): Ask {
  const { host, ...rest } = q.headers ?? {};
  return host ? { ...q, headers: { ...rest, ':authority': host } } : q;
}

describe('the PeerAPI over h2c and HTTP/1.1', { timeout: 60_000 }, () => {
  test('loopback TCP: the same status, body and key headers for every question', async (t) => {
    const { api, dir } = await withApi(t, '127.0.0.1');
    await api.listen(['127.0.0.1']);
    const session = h2connect(`http://127.0.0.1:${api.port4}`);
    t.after(() => session.close());
    for (const q of questions('x')) {
      const one = pick(await ask1(api.port4, q));
      const two = pick(await ask2(session, asH2(q)));
      assert.deepEqual(two, one, `${q.method} ${q.path} ${JSON.stringify(q.headers ?? {})}`);
    }
    assert.equal(await readFile(path.join(dir, 'x.txt'), 'utf8'), 'complete file\n');
  });

  test('a Taildrop upload over h2c resumes at a Range and lands intact; block hashes answer', async (t) => {
    const { api, dir } = await withApi(t, '127.0.0.1');
    await api.listen(['127.0.0.1']);
    const session = h2connect(`http://127.0.0.1:${api.port4}`);
    t.after(() => session.close());
    const file = randomBytes(3 << 20);
    // Half of it, then the sender goes away: the partial stays.
    const half = 1 << 20;
    const s = session.request({ ':method': 'PUT', ':path': '/v0/put/big.bin', 'content-length': String(file.length) });
    s.on('error', () => {});
    s.write(file.subarray(0, half));
    await new Promise((r) => setTimeout(r, 300));
    s.close(0x8); // CANCEL
    const hashes = await ask2(session, { method: 'GET', path: '/v0/put/big.bin' });
    assert.equal(hashes.status, 200);
    const have = hashes.body
      .trim()
      .split('\n')
      .reduce((n, l) => n + (JSON.parse(l) as { size: number }).size, 0);
    assert.ok(have > 0 && have <= half, `the partial holds ${have} bytes`);
    const rest = await ask2(session, {
      method: 'PUT',
      path: '/v0/put/big.bin',
      headers: { range: `bytes=${have}-`, 'content-length': String(file.length - have) },
      body: file.subarray(have),
    });
    assert.equal(rest.status, 200);
    assert.ok((await readFile(path.join(dir, 'big.bin'))).equals(file));
  });

  test('the userspace stack: HTTP/1.1 and h2c through netstack sockets, the caller known by its address', async (t) => {
    const { a, b } = makeLivePair();
    const { api, dir } = await withApi(t, V4.a);
    const listener = b.listen(80, (s: TcpSocket) => api.acceptConnection(s));
    t.after(() => listener.close());
    const dial = () => {
      const s = a.connect(V4.b, 80);
      ensureIdleTimer(s); // the HTTP/1.1 client sets a timeout on its socket too
      return s;
    };
    const session = h2connect(`http://${V4.b}:80`, { createConnection: dial });
    t.after(() => session.close());
    for (const q of questions('ns')) {
      const hostFixed = q.headers?.host ? q : { ...q, headers: { ...q.headers, host: `${V4.b}:80` } };
      const one = pick(await ask1(80, hostFixed, dial));
      const two = pick(await ask2(session, asH2(hostFixed)));
      assert.deepEqual(two, one, `${q.method} ${q.path}`);
    }
    assert.equal(await readFile(path.join(dir, 'ns.txt'), 'utf8'), 'complete file\n');
    // Another address of the same stack is nobody the netmap knows: closed without an answer.
    const stranger = await withApi(t, '100.64.0.99');
    const l2 = b.listen(81, (s: TcpSocket) => stranger.api.acceptConnection(s));
    t.after(() => l2.close());
    await assert.rejects(
      ask1(81, { method: 'GET', path: '/' }, () => {
        const s = a.connect(V4.b, 81);
        ensureIdleTimer(s);
        return s;
      }),
    );
  });

  test("listenOnStack: tailscaled's port on the userspace stack (the next try when taken); Host with it passes", async (t) => {
    const { a, b } = makeLivePair();
    const taken = b.listen(peerApiPort(V4.b, 0)); // someone else holds the first choice
    t.after(() => taken.close());
    const { api } = await withApi(t, V4.a);
    api.listenOnStack([V4.b, V6.b], (port, onConnection) => b.listen(port, onConnection));
    const port = peerApiPort(V4.b, 1);
    assert.deepEqual([api.port4, api.port6], [port, port]);
    const dial = () => {
      const s = a.connect(V4.b, port);
      ensureIdleTimer(s);
      return s;
    };
    const hostIp = await ask1(port, { method: 'GET', path: '/', headers: { host: `${V4.b}:${port}` } }, dial);
    assert.equal(hostIp.status, 200, 'our own address as Host, though nothing listens on it in the kernel');
    const session = h2connect(`http://${V4.b}:${port}`, { createConnection: dial });
    t.after(() => session.close());
    assert.equal((await ask2(session, { method: 'GET', path: '/v0/put/' })).status, 200);
    api.close();
    b.listen(port).close(); // the port is free again after close()
  });

  test('idle h2c and HTTP/1.1 connections are closed; h2c connections count against the cap', async (t) => {
    const { api } = await withApi(t, '127.0.0.1', { idleTimeoutMs: 300, maxConnectionsPerPeer: 2 });
    await api.listen(['127.0.0.1']);
    const closedWithin = (s: Socket, ms: number) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        s.once('close', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect(api.port4, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      });
    // Silent (no byte ever), a preface and then silence, half a preface.
    for (const first of [undefined, H2_PREFACE, H2_PREFACE.subarray(0, 5)]) {
      const s = await open();
      s.on('error', () => {});
      s.resume(); // read what the server sends, so its close is seen
      if (first) s.write(first);
      assert.ok(await closedWithin(s, 5_000), `closed after ${first?.length ?? 0} bytes and silence`);
    }
    // Two h2c sessions fill the cap; a third connection is cut; one closing makes room.
    const s1 = h2connect(`http://127.0.0.1:${api.port4}`);
    const s2 = h2connect(`http://127.0.0.1:${api.port4}`);
    t.after(() => {
      s1.destroy();
      s2.destroy();
    });
    const keep = async (s: ClientHttp2Session) =>
      assert.equal((await ask2(s, { method: 'GET', path: '/' })).status, 200);
    await Promise.all([keep(s1), keep(s2)]);
    await assert.rejects(ask1(api.port4, { method: 'GET', path: '/' }));
    s1.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await ask1(api.port4, { method: 'GET', path: '/' })).status, 200);
  });

  test('garbage after a valid preface ends that session; the server serves the next caller', async (t) => {
    const { api } = await withApi(t, '127.0.0.1');
    await api.listen(['127.0.0.1']);
    for (const junk of [randomBytes(4096), Buffer.alloc(64, 0xff), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) {
      const s = connect(api.port4, '127.0.0.1');
      s.on('error', () => {});
      s.write(Buffer.concat([H2_PREFACE, junk]));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the session stayed open after garbage')), 5_000);
        s.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        s.resume();
      });
    }
    const session = h2connect(`http://127.0.0.1:${api.port4}`);
    t.after(() => session.close());
    assert.equal((await ask2(session, { method: 'GET', path: '/' })).status, 200);
  });
});

describe('h2c in the receive thread', { timeout: 60_000 }, () => {
  test('an h2c PUT lands in the inbox through the thread, which reports it; HTTP/1.1 still works there', async (t) => {
    const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-h2c-thread-'));
    const received: Array<{ name: string; size: number; from: string }> = [];
    const thread = new ReceiveThread({
      stateDir,
      log: () => {},
      onReceived: (f) => received.push(f),
      onPortsChanged: () => {},
    });
    t.after(async () => {
      await thread.close();
      await rm(stateDir, { recursive: true, force: true });
    });
    thread.setCallers(new Map([['127.0.0.1', CALLER]]), true);
    const { v4 } = await thread.listen(['127.0.0.1']);
    assert.ok(thread.threaded, 'the PeerAPI runs in its own thread');
    const session = h2connect(`http://127.0.0.1:${v4}`);
    t.after(() => session.close());
    const body = randomBytes(1 << 20);
    const put = await ask2(session, { method: 'PUT', path: '/v0/put/thread.bin', body });
    assert.equal(put.status, 200);
    const inbox = new Inbox(stateDir).dir;
    assert.ok((await readFile(path.join(inbox, 'thread.bin'))).equals(body));
    const end = Date.now() + 10_000;
    while (received.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(received, [{ name: 'thread.bin', size: body.length, from: CALLER.name }]);
    assert.equal((await ask1(v4, { method: 'GET', path: '/v0/put/' })).status, 200);
  });
});

describe('backpressure after the sniff', { timeout: 30_000 }, () => {
  test('an HTTP/1.1 body not read yet stays in the socket, not in memory (the parser still pauses the socket)', async (t) => {
    let biggest = 0;
    let total = 0;
    const intake = new PeerApiIntake({
      handler: async (req, res) => {
        await new Promise((r) => setTimeout(r, 300)); // busy elsewhere while 16 MiB are on their way
        for await (const c of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
          biggest = Math.max(biggest, c.length);
          total += c.length;
        }
        res.end('ok');
      },
      known: () => true,
      idleMs: 10_000,
      maxConnectionsPerPeer: 2,
    });
    const server = createNetServer((s) => intake.accept(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => {
      intake.close();
      server.close();
    });
    const size = 16 << 20;
    const port = (server.address() as { port: number }).port;
    const answer = await ask1(port, { method: 'PUT', path: '/', body: Buffer.alloc(size, 0x61) });
    assert.equal(answer.status, 200);
    assert.equal(total, size);
    assert.ok(biggest <= 1 << 20, `read in pieces of at most 1 MiB, not ${biggest} bytes at once`);
  });
});
