// A request's byte source and cancellation across the daemon's two hops, as in production: a client on a real unix
// socket, the daemon's proxy (serveEngine on the socket, EngineClient on a MessageChannel), and an engine behind it
// that reads the client's file piece by piece. Raw bytes on the socket: well-formed, split, and hostile.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { EngineClient, PortTransport, RpcError, SocketTransport, serveEngine } from '../../main/engine/ipc/rpc.ts';
import {
  type ByteSource,
  type CommandMap,
  type CommandName,
  type EngineApi,
  EngineError,
  MAX_READ_BYTES,
  type RequestContext,
} from '../../main/engine/protocol.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** An engine whose fileSend reads the whole source (twice from the start, as a retry does) and answers its hash in
 *  the name; fileRead answers bytes; status waits for the signal and reports it. */
function readingEngine(seen: { aborted: number; readErrors: string[] }): EngineApi {
  return {
    async handle<C extends CommandName>(cmd: C, args: CommandMap[C]['args'], ctx: RequestContext = {}) {
      if (cmd === 'fileRead') {
        const a = args as CommandMap['fileRead']['args'];
        return Buffer.alloc(a.length, a.offset & 0xff) as unknown as CommandMap[C]['result'];
      }
      if (cmd === 'fileSend') {
        const src = ctx.source as ByteSource;
        await src.read(0, 1000); // a first look, as the resume check does
        const h = createHash('sha256');
        for (let off = 0; off < src.size; off += MAX_READ_BYTES) h.update(await src.read(off, MAX_READ_BYTES));
        const result = { target: 'x', name: h.digest('hex'), total: src.size, resumedFrom: 0 };
        return result as CommandMap[C]['result'];
      }
      if (cmd === 'ping') {
        // Waits until cancelled, then checks that reads of the source fail.
        await new Promise<void>((resolve) => ctx.signal?.addEventListener('abort', () => resolve(), { once: true }));
        seen.aborted++;
        await ctx.source?.read(0, 10).catch((e: Error) => seen.readErrors.push(e.message));
        throw new EngineError('transfer-failed', 'cancelled');
      }
      throw new EngineError('bad-request', `not here: ${cmd}`);
    },
    onEvent: () => () => {},
    close: async () => {},
  };
}

/** The daemon's proxy: forwards each request with its source and signal to an engine on a MessageChannel. */
function proxy(engine: EngineApi): EngineApi {
  const ch = new MessageChannel();
  serveEngine(engine, new PortTransport(ch.port2));
  const inner = new EngineClient(new PortTransport(ch.port1));
  return {
    handle: (cmd, args, ctx = {}) =>
      inner.request(cmd, args, { timeoutMs: 0, source: ctx.source, signal: ctx.signal }) as never,
    onEvent: () => () => {},
    close: async () => {
      inner.close();
    },
  };
}

function memorySource(bytes: Uint8Array): ByteSource & { reads: number } {
  const s = {
    size: bytes.length,
    reads: 0,
    async read(offset: number, length: number) {
      s.reads++;
      return bytes.subarray(offset, offset + length);
    },
  };
  return s;
}

describe('byte sources over the socket and the worker hop', () => {
  let dir: string;
  let server: Server;
  let sock: string;
  let api: EngineApi;
  const seen = { aborted: 0, readErrors: [] as string[] };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-rpc-source-'));
    sock = join(dir, 's.sock');
    api = proxy(readingEngine(seen));
    server = createServer((s) => serveEngine(api, new SocketTransport(s)));
    await new Promise<void>((r) => server.listen(sock, r));
  });
  after(async () => {
    await api.close(); // the worker hop's ports
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const connect = async () => {
    const s = createConnection(sock);
    await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
    return new EngineClient(new SocketTransport(s));
  };

  test('the engine reads the caller file at any offset; every byte arrives; bytes come back as replies', async () => {
    const client = await connect();
    try {
      const file = randomBytes(3 * MAX_READ_BYTES + 12345);
      const src = memorySource(file);
      const r = await client.request('fileSend', { target: 'x', name: 'f', size: file.length }, { source: src });
      assert.equal(r.name, sha(file), 'the engine hashed exactly the file');
      assert.equal(r.total, file.length);
      assert.equal(src.reads, 5, 'one read of the start, then four pieces');
      const piece = await client.request('fileRead', { name: 'f', offset: 7, length: MAX_READ_BYTES });
      assert.ok(piece instanceof Uint8Array, 'bytes arrive as bytes, not as JSON');
      assert.equal(piece.length, MAX_READ_BYTES);
      assert.ok(piece.every((b) => b === 7));
    } finally {
      client.close();
    }
  });

  test('aborting a request cancels it in the engine, two hops away; its source stops answering', async () => {
    const client = await connect();
    try {
      const ac = new AbortController();
      const before = seen.aborted;
      const src = memorySource(Buffer.alloc(100));
      const p = client.request('ping', { target: 'x' }, { source: src, signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      await assert.rejects(p, (e: unknown) => e instanceof RpcError && e.kind === 'cancelled');
      for (let i = 0; i < 100 && seen.aborted === before; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(seen.aborted, before + 1, 'the engine saw the cancel');
      for (let i = 0; i < 100 && seen.readErrors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(seen.readErrors, ['the sender cancelled'], 'reads after the cancel fail at once');
      assert.equal(src.reads, 0, 'no read reached the caller after the cancel');
    } finally {
      client.close();
    }
  });

  test('a caller that goes away cancels its requests', async () => {
    const client = await connect();
    const before = seen.aborted;
    const p = client.request('ping', { target: 'x' }, { source: memorySource(Buffer.alloc(10)) });
    p.catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    client.close();
    for (let i = 0; i < 100 && seen.aborted === before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(seen.aborted, before + 1);
  });

  test('hostile bytes: an oversized announcement closes the connection; stray data is ignored', async () => {
    const raw = createConnection(sock);
    await new Promise<void>((r) => raw.once('connect', r));
    const closed = new Promise<void>((r) => raw.once('close', () => r()));
    raw.on('error', () => {});
    raw.on('data', () => {});
    raw.write('{"type":"data","id":99,"seq":1,"bytes":"x"}\n'); // no such request: ignored
    raw.write(`{"$attach":[3],"m":{"type":"data","id":5,"seq":1,"bytes":{"$bytes":0}}}\nabc`); // ignored too
    raw.write('{"$attach":[999999999],"m":{}}\n');
    await closed;
    // The server still serves others.
    const client = await connect();
    const piece = await client.request('fileRead', { name: 'f', offset: 1, length: 3 });
    assert.deepEqual([...piece], [1, 1, 1]);
    client.close();
  });

  test('a source answering more bytes than asked, or failing, fails the request with a sentence', async () => {
    const client = await connect();
    try {
      const liar: ByteSource = { size: 2000, read: async () => Buffer.alloc(2000) };
      await assert.rejects(
        client.request('fileSend', { target: 'x', name: 'f', size: 2000 }, { source: liar }),
        (e: unknown) => e instanceof EngineError && /other than the bytes/.test(e.message),
      );
      const broken: ByteSource = { size: 2000, read: async () => Promise.reject(new Error('disk on fire')) };
      await assert.rejects(
        client.request('fileSend', { target: 'x', name: 'f', size: 2000 }, { source: broken }),
        (e: unknown) => e instanceof EngineError && e.code === 'transfer-failed' && /disk on fire/.test(e.message),
      );
    } finally {
      client.close();
    }
  });
});
