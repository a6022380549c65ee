// The open file handed to the daemon as a descriptor (main/engine/fdpass/). The chain as in production:
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
import { FdSource, sourceFd } from '../../main/engine/fdpass/fd-source.ts';
import { DescriptorStash, offerDescriptor, peerUid } from '../../main/engine/fdpass/handover.ts';
import { fdAddon } from '../../main/engine/fdpass/native-fd.ts';
import { EngineClient, PortTransport, SocketTransport, serveEngine } from '../../main/engine/ipc/rpc.ts';
import type { ByteSource, CommandMap, CommandName, EngineApi, RequestContext } from '../../main/engine/protocol.ts';
import { sendLocalFile } from '../../main/engine/taildrop/client-files.ts';
import { SendThread } from '../../main/engine/taildrop/send-thread.ts';
import { startStubReceiver } from './stub-receiver.ts';

const skip = fdAddon() === undefined ? 'no descriptor passing here' : false;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** Open descriptors on the tests' own files (sockets, /dev/null of a new thread and such come and go). */
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
        .filter((t) => t.includes('/fdpass-'))
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
  let ch: MessageChannel;
  const eng = engine();
  const conns = new Set<Socket>();
  let filesBefore: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fdpass-'));
    sock = join(dir, 's.sock');
    ch = new MessageChannel();
    serveEngine(eng, new PortTransport(ch.port1), { acceptFds: true });
    const inner = new EngineClient(new PortTransport(ch.port2));
    stash = new DescriptorStash();
    server = createServer({ pauseOnConnect: true }, (s) => {
      conns.add(s);
      s.on('close', () => conns.delete(s));
      stash.accept(s, (js) => {
        serveEngine(proxyApi(inner, stash, peerUid(js)), new SocketTransport(js));
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
    ch.port1.close();
    ch.port2.close();
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

  test('a directory, a write-only file, a file not on a local disk and a bad token are refused; the client then streams', async () => {
    const wo = openSync(join(dir, 'wo.bin'), 'w');
    const d = openSync(dir, 'r');
    // A regular file whose reads the kernel serves, as a network or FUSE filesystem's server would: refused.
    const remote = process.platform === 'linux' ? openSync('/proc/self/status', 'r') : undefined;
    try {
      assert.equal(await offerDescriptor(sock, wo), undefined);
      assert.equal(await offerDescriptor(sock, d), undefined);
      if (remote !== undefined) {
        assert.throws(() => fdAddon()?.fdCheckReadable(remote), /not on a local filesystem/);
        assert.equal(await offerDescriptor(sock, remote), undefined);
      }
      const local = openSync(join(dir, 'wo.bin'), 'r');
      try {
        assert.equal(fdAddon()?.fdCheckReadable(local), 0, 'a file on this disk passes');
      } finally {
        closeSync(local);
      }
    } finally {
      closeSync(wo);
      closeSync(d);
      if (remote !== undefined) closeSync(remote);
    }
    assert.equal(stash.take('0'.repeat(32), process.getuid?.()), undefined);
  });

  test('a descriptor goes only to a request from the user who handed it over', async () => {
    const fd = openSync(join(dir, 'a.bin'), 'r');
    try {
      const token = await offerDescriptor(sock, fd);
      assert.ok(token, 'handed over');
      const me = process.getuid?.() ?? 0;
      assert.equal(stash.take(token, me + 1), undefined, 'another user');
      assert.equal(stash.take(token, undefined), undefined, 'an unknown user');
      const kept = stash.take(token, me);
      assert.ok(kept, 'the same user');
      closeSync(kept.fd);
    } finally {
      closeSync(fd);
    }
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

  test('hostile handovers are refused with a reply, their descriptors closed, and the daemon serves on', async () => {
    const prefix = '{"type":"request","id":0,"cmd":"fdHandover"';
    const fd = openSync(join(dir, 'a.bin'), 'r');
    const addon = fdAddon() as NonNullable<ReturnType<typeof fdAddon>>;
    const refusal = async (line: string) => {
      const reply = JSON.parse((await addon.fdSendTo(sock, fd, Buffer.from(line), 3_000)).toString('utf8'));
      return reply as { ok: boolean; error?: { message: string } };
    };
    try {
      for (const line of [
        `${prefix} not json at all\n`,
        `${prefix},"args":{"token":"short"}}\n`,
        `${prefix},"args":{"token":{"__proto__":1}}}\n`,
        `${prefix},"args":{"token":"${'a'.repeat(32)}"}}`, // no end of line
        `${prefix}${'x'.repeat(900)}\n`,
      ]) {
        const r = await refusal(line);
        assert.equal(r.ok, false, line);
        assert.match(r.error?.message ?? '', /^descriptor refused: /);
      }
      // The line without a descriptor, over a plain connection: refused too.
      const s = createConnection(sock);
      const answer = new Promise<string>((resolve) => {
        let text = '';
        s.setEncoding('utf8').on('data', (d: string) => {
          text += d;
        });
        s.on('close', () => resolve(text));
        s.on('error', () => resolve(text));
      });
      s.end(`${prefix},"args":{"token":"${'b'.repeat(32)}"}}\n`);
      assert.match(await answer, /"ok":false.*no descriptor came with the handover/);
      assert.equal(stash.take('b'.repeat(32), process.getuid?.()), undefined);
    } finally {
      closeSync(fd);
    }
    const c = await client();
    try {
      assert.equal((await c.request('status', {})).state, 'Running', 'the daemon still serves');
    } finally {
      c.close();
    }
  });

  test('no descriptor is left open', { skip: process.platform !== 'linux' }, async () => {
    await new Promise((r) => setTimeout(r, 200)); // FdSource closes after its reads settle
    assert.deepEqual(openFiles(), filesBefore);
  });
});

test('the send thread reads its own copy of the descriptor; none is left open after a send, a cancel or its end', {
  skip,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fdpass-thread-'));
  const body = randomBytes(4 * 2 ** 20 + 7);
  const f = join(dir, 'f.bin');
  writeFileSync(f, body);
  const receiver = await startStubReceiver();
  const base = receiver.base;
  const thread = new SendThread();
  const before = openFiles();
  let readsHere = 0;
  class Counted extends FdSource {
    override read(offset: number, length: number) {
      readsHere++;
      return super.read(offset, length);
    }
  }
  try {
    const src = new Counted(openSync(f, 'r'), body.length);
    const r = await thread.send({ base, source: src, name: 'f.bin' });
    await src.close();
    assert.equal(r.total, body.length);
    assert.ok(receiver.got().equals(body), 'the receiver got the file');
    assert.equal(readsHere, 0, 'no byte went through this thread');

    receiver.hold();
    const ac = new AbortController();
    const src2 = new Counted(openSync(f, 'r'), body.length);
    const pending = thread.send({ base, source: src2, name: 'g.bin', signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    await assert.rejects(pending, /cancelled/);
    await src2.close();
    await new Promise((r) => setTimeout(r, 300)); // the thread closes its copy once its reads settle
    assert.deepEqual(openFiles(), before);

    // The thread ended under a send (Taildrop stopped): its copy is closed for it once it has exited.
    const src3 = new Counted(openSync(f, 'r'), body.length);
    const third = thread.send({ base, source: src3, name: 'h.bin' });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(openFiles().length, before.length + 2, "the caller's descriptor and the thread's copy");
    const refused = assert.rejects(third, /Taildrop stopped/);
    await thread.close();
    await refused;
    await src3.close();
    assert.deepEqual(openFiles(), before);
  } finally {
    await thread.close();
    receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('an FdSource reading with blocking calls (the send thread) returns the bytes a pooled one does', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fdpass-blocking-'));
  try {
    const body = randomBytes(3 * 2 ** 20 + 11);
    const f = join(dir, 'b.bin');
    writeFileSync(f, body);
    for (const blocking of [false, true]) {
      const src = new FdSource(openSync(f, 'r'), body.length - 5, blocking);
      const parts: Uint8Array[] = [];
      for (let off = 0; off < src.size; off += 1 << 20) parts.push(await src.read(off, 1 << 20));
      assert.ok(
        Buffer.concat(parts).equals(body.subarray(0, body.length - 5)),
        `blocking=${blocking}: the declared size`,
      );
      assert.equal((await src.read(src.size, 10)).length, 0, 'nothing past the declared size');
      await src.close();
      await assert.rejects(src.read(0, 1), /closed/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
