// Taildrop's receiving side in a thread of its own (issue 13, item 4): a PUT to the PeerAPI lands in the inbox
// through the receive thread and the engine hears of it; hostile requests get their HTTP errors there without
// harming anything here; a thread that fails to start or dies is replaced, its failure a typed error, and the
// engine's thread carries on.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { NetMap } from '../../main/engine/control/netmap.ts';
import { Inbox } from '../../main/engine/taildrop/inbox.ts';
import { PeerApi, peerApiPort } from '../../main/engine/taildrop/peerapi.ts';
import { ReceiveThread, ReceiveThreadError } from '../../main/engine/taildrop/receive-thread.ts';
import { callerTable, FILE_SHARING_CAP, Taildrop } from '../../main/engine/taildrop/service.ts';

const SELF = '127.0.0.1';
const PEER = '127.0.0.2';

function netmap(): NetMap {
  const nm = new NetMap();
  nm.apply({
    Node: {
      ID: 1,
      StableID: 'self1',
      Name: 'me.tailnet.test.',
      User: 7,
      Addresses: [`${SELF}/32`],
      CapMap: { [FILE_SHARING_CAP]: null },
    },
    Peers: [
      { ID: 2, StableID: 'peer2', Name: 'laptop.tailnet.test.', User: 7, Addresses: [`${PEER}/32`] },
      {
        ID: 3,
        StableID: 'other3',
        Name: 'tagged.tailnet.test.',
        User: 7,
        Tags: ['tag:x'],
        Addresses: ['127.0.0.3/32'],
      },
    ],
    UserProfiles: [{ ID: 7, LoginName: 'ann@example.com', DisplayName: 'Ann' }],
  } as Parameters<NetMap['apply']>[0]);
  return nm;
}

/** PUT body from PEER: the status code, or 'reset' when the connection was cut without an answer. */
function put(port: number, urlPath: string, body: Uint8Array, headers: Record<string, string> = {}) {
  return new Promise<number | 'reset'>((resolve) => {
    const req = request(
      {
        host: SELF,
        port,
        localAddress: PEER,
        path: urlPath,
        method: 'PUT',
        headers: { host: 'peer', 'content-length': body.length, ...headers },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve('reset'));
    req.end(body);
  });
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function started(
  t: { after(f: () => unknown): void },
  extra: Partial<ConstructorParameters<typeof Taildrop>[1]> = {},
) {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-td-recv-'));
  const logs: string[] = [];
  const received: Array<{ name: string; size: number; from: string }> = [];
  const portsChanged: Array<{ v4: number; v6: number }> = [];
  const td = new Taildrop(stateDir, {
    log: (m) => logs.push(m),
    onReceived: (f) => received.push(f),
    onPortsChanged: (p) => portsChanged.push(p),
    ...extra,
  });
  td.setNetMap(netmap());
  t.after(async () => {
    td.close();
    await td.receiveThread.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  return { td, stateDir, inbox: path.join(stateDir, 'taildrop'), logs, received, portsChanged };
}

/** A ReceiveThread without Taildrop around it, closed and its state dir removed after the test. */
async function bareReceiveThread(t: { after(f: () => unknown): void }): Promise<ReceiveThread> {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-td-recv-'));
  const rt = new ReceiveThread({ stateDir, log: () => {}, onReceived: () => {}, onPortsChanged: () => {} });
  t.after(async () => {
    await rt.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  return rt;
}

/** The listen fails with code 'closed' within 5 s (never settling is the bug these tests guard against). */
async function failsClosedWithin5s(listen: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    listen.then(
      () => 'listened',
      (e: unknown) => e,
    ),
    new Promise((r) => {
      timer = setTimeout(() => r('still waiting after 5 s'), 5_000);
    }),
  ]).finally(() => clearTimeout(timer));
  assert.ok(
    outcome instanceof ReceiveThreadError && outcome.code === 'closed',
    `the listen's outcome: ${String(outcome)}`,
  );
}

describe('Taildrop receive thread', { timeout: 60_000 }, () => {
  test('the caller table: peers by address, our own address never, the tagged peer not allowed to send', () => {
    const table = callerTable(netmap());
    assert.equal(table.get(SELF), undefined);
    assert.deepEqual(table.get(PEER), {
      senderId: 'peer2',
      name: 'laptop.tailnet.test',
      mayFileSend: true,
      userName: 'Ann',
      sameUser: true,
      sameUntaggedUser: true,
    });
    const tagged = table.get('127.0.0.3');
    assert.deepEqual([tagged?.mayFileSend, tagged?.sameUser, tagged?.sameUntaggedUser], [false, true, false]);
    assert.equal(table.get('__proto__'), undefined);
  });

  test('a PUT lands in the inbox through the thread; the engine hears of it', async (t) => {
    const { td, inbox, received } = await started(t);
    await td.listen([`${SELF}/32`]);
    assert.ok(td.receiveThread.threaded, 'the PeerAPI runs in its own thread');
    const body = randomBytes(3 << 20);
    assert.equal(await put(td.ports().v4, '/v0/put/big.bin', body), 200);
    assert.ok((await readFile(path.join(inbox, 'big.bin'))).equals(body));
    await until('the received event', () => received.length === 1);
    assert.deepEqual(received[0], { name: 'big.bin', size: body.length, from: 'laptop.tailnet.test' });
  });

  test('overlapping listen calls move the PeerAPI once: the first reports a change, the repeat none', async (t) => {
    const { td } = await started(t);
    const results = await Promise.all([
      td.listen([`${SELF}/32`]),
      td.listen([`${SELF}/32`]),
      td.listen([`${SELF}/32`]),
    ]);
    assert.deepEqual(results, [true, false, false]);
    const port = td.ports().v4;
    assert.ok(port > 0, 'listening');
    assert.equal(await put(port, '/v0/put/after.bin', new Uint8Array(8)), 200);
  });

  test('hostile requests get their errors in the thread; the thread and this one go on', async (t) => {
    const { td, inbox } = await started(t);
    await td.listen([`${SELF}/32`]);
    const port = td.ports().v4;
    const worker = td.receiveThread.worker;
    assert.equal(await put(port, '/v0/put/..%2F..%2Fescape', new Uint8Array(4)), 400);
    assert.equal(await put(port, '/v0/put/%E0%A4%A', new Uint8Array(4)), 400);
    assert.equal(await put(port, '/v0/put/x.bin', new Uint8Array(4), { range: 'bytes=abc' }), 400);
    assert.equal(await put(port, '/v0/put/x.bin', new Uint8Array(4), { range: 'bytes=999-' }), 400);
    // Not HTTP at all, then a header that never ends: cut, nothing stored.
    await new Promise<void>((resolve) => {
      const s = connect({ host: SELF, port, localAddress: PEER }, () => s.end('\x00\xff garbage \r\n\r\n'));
      s.on('close', () => resolve());
      s.on('error', () => {});
      s.resume();
    });
    assert.equal(td.receiveThread.worker, worker, 'the same thread still serves');
    assert.equal(await put(port, '/v0/put/fine.txt', Buffer.from('ok')), 200);
    assert.deepEqual((await readdir(inbox)).sort(), ['fine.txt']);
  });

  test('an address we cannot listen on: a typed error, and the engine goes on', async (t) => {
    const { td } = await started(t);
    await assert.rejects(
      td.listen(['192.0.2.77/32']),
      (e: unknown) => e instanceof ReceiveThreadError && e.code === 'listen' && /cannot listen/.test(e.message),
    );
    await td.listen([`${SELF}/32`]); // the same thread serves the next, good address
    assert.ok(td.ports().v4 > 0);
  });

  test('a thread that dies as it starts: a typed error, then a new thread serves and its ports are told', async (t) => {
    const { td, inbox, portsChanged, logs } = await started(t, { failFirstReceiveThread: true });
    await assert.rejects(
      td.listen([`${SELF}/32`]),
      (e: unknown) => e instanceof ReceiveThreadError && e.code === 'died',
    );
    await until('a replacement thread', () => portsChanged.length === 1);
    assert.ok(
      logs.some((l) => /receive thread failed: receive thread: failing at start/.test(l)),
      logs.join('\n'),
    );
    assert.equal(td.ports().v4, portsChanged[0]?.v4);
    assert.equal(await put(td.ports().v4, '/v0/put/after.txt', Buffer.from('hi')), 200);
    assert.deepEqual(await readdir(inbox), ['after.txt']);
  });

  test('the thread killed mid-upload: the upload fails, a new thread takes over, the partial resumes', async (t) => {
    const { td, inbox } = await started(t);
    await td.listen([`${SELF}/32`]);
    const port = td.ports().v4;
    const body = randomBytes(8 << 20);
    // Half the body, then the thread dies under the upload.
    const cut = new Promise<number | 'reset'>((resolve) => {
      const req = request(
        {
          host: SELF,
          port,
          localAddress: PEER,
          path: '/v0/put/cut.bin',
          method: 'PUT',
          headers: { host: 'peer', 'content-length': body.length },
        },
        (res) => resolve(res.statusCode ?? 0),
      );
      req.on('error', () => resolve('reset'));
      req.write(body.subarray(0, 4 << 20));
    });
    await until('a partial file', async () => (await readdir(inbox)).some((n) => n.endsWith('.partial')));
    await td.receiveThread.worker?.terminate();
    assert.equal(await cut, 'reset');
    await until('a replacement thread', () => td.receiveThread.restarts === 1 && td.ports().v4 > 0);
    const partial = (await readdir(inbox)).find((n) => n.endsWith('.partial'));
    assert.equal(partial, 'cut.bin.peer2.partial', 'the partial stays for a resume');
    const have = (await readFile(path.join(inbox, partial))).length;
    assert.equal(
      await put(td.ports().v4, '/v0/put/cut.bin', body.subarray(have), { range: `bytes=${have}-` }),
      200,
      'resumed in the new thread',
    );
    assert.ok((await readFile(path.join(inbox, 'cut.bin'))).equals(body));
  });

  test('close ends the thread; a later listen starts another on the same port', async (t) => {
    const { td } = await started(t);
    await td.listen([`${SELF}/32`]);
    const first = td.receiveThread.worker;
    const port = td.ports().v4;
    td.close();
    assert.equal(td.receiveThread.threaded, false);
    await td.listen([`${SELF}/32`]);
    assert.notEqual(td.receiveThread.worker, first);
    assert.equal(td.ports().v4, port, "tailscaled's port again: the old thread let go of it first");
  });

  test('close while the thread is still starting: the listen fails at once (typed), and nothing keeps the port', async (t) => {
    const { td } = await started(t);
    const starting = td.listen([`${SELF}/32`]);
    td.close(); // down while the PeerAPI comes up: the update waiting on it must not wait forever
    await failsClosedWithin5s(starting);
    assert.equal(td.receiveThread.threaded, false);
    assert.deepEqual(td.ports(), { v4: 0, v6: 0 });
    // Had the cut-off thread gone on to listen, tailscaled's first port would be taken and this would get the next.
    await td.listen([`${SELF}/32`]);
    assert.equal(td.ports().v4, peerApiPort(SELF, 0));
  });

  test('the ReceiveThread closed while its new thread boots: the waiting listen fails at once', async (t) => {
    const rt = await bareReceiveThread(t);
    const starting = rt.listen([SELF]);
    await until('the thread spawned', () => rt.threaded, 2_000);
    const closing = rt.close(); // the thread is terminated before it could answer
    await failsClosedWithin5s(starting);
    await closing;
    assert.deepEqual(rt.ports, { v4: 0, v6: 0 });
  });

  test('the PeerApi on this thread, closed while it binds: the bind that finishes later lets go of the port', async (t) => {
    const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-td-recv-'));
    t.after(() => rm(stateDir, { recursive: true, force: true }));
    const api = new PeerApi({
      inbox: new Inbox(stateDir),
      identify: () => undefined,
      fileSharing: () => true,
      log: () => {},
      onReceived: () => {},
    });
    const binding = api.listen([SELF]);
    api.close();
    await assert.rejects(binding, /closed while it started listening/);
    const port = peerApiPort(SELF, 0);
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect({ host: SELF, port }, () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });
    assert.ok(refused, `nothing listens on ${SELF}:${port}`);
  });

  test('the ReceiveThread alone: callers set before or after the thread starts are the ones it judges by', async (t) => {
    const rt = await bareReceiveThread(t);
    const { v4 } = await rt.listen([SELF]);
    assert.equal(await put(v4, '/v0/put/a.txt', Buffer.from('a')), 'reset', 'no callers yet: no HTTP at all');
    rt.setCallers(new Map([[PEER, { senderId: 'p', name: 'p', mayFileSend: true }]]), true);
    await until('the new table', async () => (await put(v4, '/v0/put/a.txt', Buffer.from('a'))) === 200);
    rt.setCallers(new Map([[PEER, { senderId: 'p', name: 'p', mayFileSend: true }]]), false);
    await until('file sharing off', async () => (await put(v4, '/v0/put/b.txt', Buffer.from('b'))) === 403);
  });
});
