// The engine protocol's transports: serveEngine and EngineClient over a real unix socket and a real
// MessageChannel, with a small fake engine; then the real EngineHost running the engine in a worker thread.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import { ENGINE_YOUNG_GENERATION_MB, EngineHost } from '../../main/engine/host.ts';
import { EngineClient, PortTransport, RpcError, SocketTransport, serveEngine } from '../../main/engine/ipc/rpc.ts';
import {
  type CommandMap,
  type CommandName,
  type EngineApi,
  EngineError,
  type EngineEvent,
  type StatusSnapshot,
} from '../../main/engine/protocol.ts';

const SNAPSHOT: StatusSnapshot = {
  state: 'NeedsLogin',
  prefs: { ...DEFAULT_PREFS, advertiseRoutes: [] },
  peers: [],
  health: [],
};

/** A fake engine: status answers, login refuses a bad key, logout throws a plain Error, down never answers. */
function fakeEngine(): EngineApi & { emit(e: EngineEvent): void } {
  const listeners = new Set<(e: EngineEvent) => void>();
  return {
    async handle<C extends CommandName>(cmd: C, args: CommandMap[C]['args']): Promise<CommandMap[C]['result']> {
      if (cmd === 'login' && (args as CommandMap['login']['args']).authKey === 'bad') {
        throw new EngineError('auth-key-invalid', 'the auth key is not valid');
      }
      if (cmd === 'logout') throw new Error('secret detail /etc/shadow');
      if (cmd === 'down') return new Promise<never>(() => {});
      return SNAPSHOT as CommandMap[C]['result'];
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {},
    emit(e) {
      for (const l of listeners) l(e);
    },
  };
}

function nextEvent(client: EngineClient): Promise<EngineEvent> {
  return new Promise((resolve) => {
    const off = client.on((e) => {
      off();
      resolve(e);
    });
  });
}

/** Opens a raw connection and collects the reply lines it receives. */
async function rawConnection(path: string): Promise<{ socket: Socket; lines: unknown[]; closed: Promise<void> }> {
  const socket = createConnection(path);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const lines: unknown[] = [];
  let buf = '';
  socket.on('data', (d) => {
    buf += d.toString('utf8');
    let nl = buf.indexOf('\n');
    for (; nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, lines, closed };
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('over a unix socket', () => {
  let dir: string;
  let path: string;
  let server: Server;
  const engine = fakeEngine();
  const clients: EngineClient[] = [];
  const connect = async () => {
    const socket = createConnection(path);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new EngineClient(new SocketTransport(socket));
    clients.push(client);
    return client;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-rpc-'));
    path = join(dir, 'e.sock');
    server = createServer((socket) => serveEngine(engine, new SocketTransport(socket)));
    await new Promise<void>((resolve) => server.listen(path, resolve));
  });
  after(async () => {
    for (const c of clients) c.close();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  test('request and reply; EngineError codes survive; other failures are internal with a safe message', async () => {
    const client = await connect();
    assert.deepEqual(await client.request('status', {}), SNAPSHOT);
    await assert.rejects(client.request('login', { authKey: 'bad' }), (e: unknown) => {
      assert.ok(e instanceof EngineError);
      assert.equal(e.code, 'auth-key-invalid');
      assert.equal(e.message, 'the auth key is not valid');
      return true;
    });
    await assert.rejects(client.request('logout', {}), (e: unknown) => {
      assert.ok(e instanceof EngineError);
      assert.equal(e.code, 'internal');
      assert.doesNotMatch(e.message, /secret|shadow/);
      return true;
    });
  });

  test('events reach every connected client', async () => {
    const [a, b] = [await connect(), await connect()];
    await a.request('status', {}); // both connections are being served once they have had an answer
    await b.request('status', {});
    const got = Promise.all([nextEvent(a), nextEvent(b)]);
    engine.emit({ type: 'event', event: 'state', state: 'Running' });
    for (const e of await got) assert.deepEqual(e, { type: 'event', event: 'state', state: 'Running' });
  });

  test('malformed lines, non-JSON, unknown commands and split lines get error replies or are ignored', async () => {
    const raw = await rawConnection(path);
    raw.socket.write('not json at all\n\n[1,2]\nnull\n"x"\n{"type":"request"}\n');
    raw.socket.write('{"type":"request","id":7,"cmd":"nope","args":{}}\n');
    raw.socket.write('{"id":8, "cmd": broken\n');
    raw.socket.write('{"type":"request","id":9,"cmd":"status","args":[]}\n');
    raw.socket.write('{"type":"request","id":10,"cmd":"status","args":{"__proto__":{"x":1}}}\n');
    raw.socket.write('{"type":"request","id":11,');
    raw.socket.write('"cmd":"sta');
    raw.socket.write('tus","args":{}}\r\n');
    await until(() => raw.lines.length >= 5, 'five replies');
    const byId = new Map(raw.lines.map((l) => [(l as { id: number }).id, l as Record<string, unknown>]));
    for (const id of [7, 8, 9, 10]) {
      assert.equal(byId.get(id)?.ok, false, `reply ${id}`);
      assert.equal((byId.get(id)?.error as { code: string } | undefined)?.code, 'bad-request');
    }
    assert.deepEqual(byId.get(11), { type: 'reply', id: 11, ok: true, result: SNAPSHOT });
    assert.equal(raw.lines.length, 5);
    raw.socket.destroy();
  });

  test('an oversized line closes only that connection', async () => {
    const other = await connect();
    const raw = await rawConnection(path);
    raw.socket.write(`{"type":"request","id":1,"cmd":"status","args":{"pad":"${'x'.repeat(1024 * 1024)}`);
    await raw.closed;
    assert.deepEqual(await other.request('status', {}), SNAPSHOT);
  });

  test('a request times out with a clear message', async () => {
    const client = await connect();
    await assert.rejects(client.request('down', {}, { timeoutMs: 100 }), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.kind, 'timeout');
      assert.match(e.message, /did not answer "down" within 0\.1 s/);
      return true;
    });
  });

  test('closing, by either side, rejects pending requests', async () => {
    const client = await connect();
    const pending = client.request('down', {}, { timeoutMs: 0 });
    client.close();
    await assert.rejects(pending, (e: unknown) => e instanceof RpcError && e.kind === 'closed');
    await assert.rejects(client.request('status', {}), (e: unknown) => e instanceof RpcError && e.kind === 'closed');

    let serverSide: Socket | undefined;
    server.once('connection', (s: Socket) => {
      serverSide = s;
    });
    const second = await connect();
    const waiting = second.request('down', {}, { timeoutMs: 0 });
    await until(() => serverSide !== undefined, 'the server side of the connection');
    serverSide?.destroy();
    await assert.rejects(waiting, (e: unknown) => e instanceof RpcError && e.kind === 'closed');
  });
});

describe('over a MessageChannel', () => {
  test('request/reply, errors, events, malformed messages, close', async () => {
    const { port1, port2 } = new MessageChannel();
    const engine = fakeEngine();
    serveEngine(engine, new PortTransport(port1));
    const client = new EngineClient(new PortTransport(port2));
    assert.deepEqual(await client.request('status', {}), SNAPSHOT);
    await assert.rejects(client.request('login', { authKey: 'bad' }), { code: 'auth-key-invalid' });

    const replies: unknown[] = [];
    port2.on('message', (m) => replies.push(m));
    port2.postMessage('hello');
    port2.postMessage({ type: 'request', id: 1000, cmd: 'status', args: null });
    port2.postMessage({ type: 'request', id: 1001, cmd: 'reboot', args: {} });
    await until(() => replies.length >= 2, 'two error replies');
    assert.deepEqual(
      replies.map((r) => [(r as { id: number }).id, (r as { error: { code: string } }).error.code]),
      [
        [1000, 'bad-request'],
        [1001, 'bad-request'],
      ],
    );

    const event = nextEvent(client);
    engine.emit({ type: 'event', event: 'browseToURL', url: 'https://login.example/a' });
    assert.deepEqual(await event, { type: 'event', event: 'browseToURL', url: 'https://login.example/a' });

    const pending = client.request('down', {}, { timeoutMs: 0 });
    port1.close();
    await assert.rejects(pending, (e: unknown) => e instanceof RpcError && e.kind === 'closed');
  });
});

describe('EngineHost', () => {
  test('runs the real engine in a worker thread', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trellis-host-'));
    const host = await EngineHost.start();
    try {
      const first = await host.client.request('status', {}).then(
        (s) => s.state,
        (e: unknown) => (e instanceof EngineError ? e.code : e),
      );
      assert.ok(first === 'NoState' || first === 'not-started', `before start: ${String(first)}`);
      const started = await host.client.request('start', { stateDir: join(dir, 'state') });
      assert.notEqual(started.state, 'NoState');
      assert.notEqual((await host.client.request('status', {})).state, 'NoState');
      // a small young generation: the data path's garbage goes in scavenges, not whole-heap marking
      assert.equal(host.resourceLimits.maxYoungGenerationSizeMb, ENGINE_YOUNG_GENERATION_MB);
    } finally {
      await host.stop();
      await rm(dir, { recursive: true, force: true });
    }
    await assert.rejects(host.client.request('status', {}), (e: unknown) => e instanceof RpcError);
  });
});
