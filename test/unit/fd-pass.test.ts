// PROTOTYPE: the open file handed to the daemon as a descriptor (main/engine/fdpass/). The chain as in production:
// a client on a real unix socket, the daemon's connection sorting and proxy, an engine behind a MessageChannel
// that serves with acceptFds. Checks that the engine reads the descriptor (no read crosses the socket), that
// streaming is the fallback, that bad descriptors are refused, that JSON clients are untouched, and no fd leaks.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { proxyApi } from '../../main/cli/daemon.ts';
import { sourceFd } from '../../main/engine/fdpass/fd-source.ts';
import { DescriptorStash, offerDescriptor } from '../../main/engine/fdpass/handover.ts';
import { fdAddon } from '../../main/engine/fdpass/native-fd.ts';
import type { ByteSource, CommandMap, CommandName, EngineApi, RequestContext } from '../../main/engine/protocol.ts';
import { EngineClient, PortTransport, SocketTransport, serveEngine } from '../../main/engine/rpc.ts';
import { sendLocalFile } from '../../main/engine/taildrop/client-files.ts';

const skip = fdAddon() === undefined ? 'no descriptor passing here' : false;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** Open descriptors that are files (sockets and the like come and go with the test's own connections). */
const openFiles = () =>
  process.platform !== 'linux'
    ? []
    : readdirSync('/proc/self/fd')
        .map((n) => {
          try {
            return readlinkSync(`/proc/self/fd/${n}`);
          } catch {
            return '';
          }
        })
        .filter((t) => t.startsWith('/'))
        .sort();

/** fileSend hashes the source; `via` says whether the engine got a descriptor. */
function engine(): EngineApi & { via: string[] } {
  const via: string[] = [];
  return {
    via,
    async handle<C extends CommandName>(cmd: C, _args: CommandMap[C]['args'], ctx: RequestContext = {}) {
      if (cmd !== 'fileSend') return { state: 'Running' } as unknown as CommandMap[C]['result'];
      const src = ctx.source as ByteSource;
      via.push(sourceFd(src) !== undefined ? 'fd' : 'stream');
      const h = createHash('sha256');
      for (let off = 0; off < src.size; off += 1 << 20) h.update(await src.read(off, 1 << 20));
      return { target: 'x', name: h.digest('hex'), total: src.size, resumedFrom: 0 } as CommandMap[C]['result'];
    },
    onEvent: () => () => {},
    close: async () => {},
  };
}

describe('descriptor passing', { skip }, () => {
  let dir: string;
  let sock: string;
  let server: Server;
  let stash: DescriptorStash;
  const eng = engine();
  const conns = new Set<Socket>();
  let filesBefore: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fdpass-'));
    sock = join(dir, 's.sock');
    const ch = new MessageChannel();
    serveEngine(eng, new PortTransport(ch.port1), { acceptFds: true });
    const inner = new EngineClient(new PortTransport(ch.port2));
    stash = new DescriptorStash();
    const api = proxyApi(inner, stash);
    server = createServer({ pauseOnConnect: true }, (s) => {
      conns.add(s);
      s.on('close', () => conns.delete(s));
      stash.accept(s, (js) => {
        serveEngine(api, new SocketTransport(js));
        js.resume();
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
    filesBefore = openFiles();
  });
  after(async () => {
    for (const c of conns) c.destroy();
    server.close();
    stash.close();
    await rm(dir, { recursive: true, force: true });
  });

  const client = async () => {
    const s = createConnection(sock);
    await new Promise((r) => s.once('connect', r));
    return new EngineClient(new SocketTransport(s));
  };

  test('the engine reads the handed descriptor; the same file streams without the socket path', async () => {
    const bytes = randomBytes(5 * 2 ** 20 + 123);
    const f = join(dir, 'a.bin');
    writeFileSync(f, bytes);
    const c = await client();
    try {
      const viaFd = await sendLocalFile(c, { target: 'x', path: f, socketPath: sock });
      const viaStream = await sendLocalFile(c, { target: 'x', path: f });
      assert.equal(viaFd.name, sha(bytes));
      assert.equal(viaStream.name, sha(bytes));
      assert.deepEqual(eng.via, ['fd', 'stream']);
    } finally {
      c.close();
    }
  });

  test('a directory, a write-only file and a bad token are refused; the client then streams', async () => {
    const wo = openSync(join(dir, 'wo.bin'), 'w');
    const d = openSync(dir, 'r');
    try {
      assert.equal(await offerDescriptor(sock, wo), undefined);
      assert.equal(await offerDescriptor(sock, d), undefined);
    } finally {
      closeSync(wo);
      closeSync(d);
    }
    assert.equal(stash.take('0'.repeat(32)), undefined);
  });

  test('a JSON client that waits before writing is served, its bytes intact', async () => {
    const s = createConnection(sock);
    await new Promise((r) => s.once('connect', r));
    await new Promise((r) => setTimeout(r, 400)); // past the daemon's look at the first bytes
    const c = new EngineClient(new SocketTransport(s));
    try {
      assert.equal((await c.request('status', {})).state, 'Running');
    } finally {
      c.close();
    }
  });

  test('a daemon without the feature answers the handover at once; the client streams', async () => {
    const old = join(dir, 'old.sock');
    const plain = createServer((s) => serveEngine(engine(), new SocketTransport(s)));
    await new Promise<void>((r) => plain.listen(old, r));
    const fd = openSync(join(dir, 'a.bin'), 'r');
    try {
      const t0 = Date.now();
      assert.equal(await offerDescriptor(old, fd), undefined);
      assert.ok(Date.now() - t0 < 1000, 'no waiting for a timeout');
    } finally {
      closeSync(fd);
      plain.close();
    }
  });

  test('no descriptor is left open', { skip: process.platform !== 'linux' }, async () => {
    await new Promise((r) => setTimeout(r, 200)); // FdSource closes after its reads settle
    assert.deepEqual(openFiles(), filesBefore);
  });
});
