// Port forwards for userspace mode (issue 15): the pref's checks, and the forwarder between two userspace stacks
// (a peer's stack dialing, ours listening) and real TCP listeners on 127.0.0.1 — bytes intact both ways, each
// direction's half-close passed on, a refused or silent local service resetting the tailnet connection, the
// connection bound, and set()/close() changing what is forwarded.
import assert from 'node:assert/strict';
import { createServer, type Server, Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { TcpSocket } from '../../main/engine/netstack/tcp-socket.ts';
import {
  ForwardPortsError,
  formatForwardPorts,
  PortForwarder,
  parseForwardPorts,
} from '../../main/engine/services/port-forward.ts';
import { makeLivePair, seededBytes, sha256, V4 } from './netstack-link.ts';

describe('the forwardPorts pref', () => {
  test('PORT and TAILNET_PORT=LOCAL_PORT, ports 1–65535, trimmed, in order', () => {
    const f = parseForwardPorts(['8080', ' 2222=22 ', '1', '65535=65535']);
    assert.deepEqual(f, [
      { tailnetPort: 8080, localPort: 8080 },
      { tailnetPort: 2222, localPort: 22 },
      { tailnetPort: 1, localPort: 1 },
      { tailnetPort: 65535, localPort: 65535 },
    ]);
    assert.deepEqual(formatForwardPorts(f), ['8080', '2222=22', '1', '65535']);
    assert.deepEqual(parseForwardPorts([]), []);
  });

  test('one plain sentence for each bad entry; duplicates of a tailnet port refused', () => {
    const bad = ['0', '65536', 'http', '80=', '=80', '1=2=3', '', '-1', '080000', 42, '9000', '9000=22'];
    try {
      parseForwardPorts(bad);
      assert.fail('accepted bad entries');
    } catch (e) {
      assert.ok(e instanceof ForwardPortsError);
      assert.equal(e.problems.length, 11, e.message);
      assert.match(e.problems[0] ?? '', /^"0" is not a port forward: give PORT or TAILNET_PORT=LOCAL_PORT/);
      assert.match(e.problems[9] ?? '', /^a non-text entry is not a port forward/);
      assert.equal(e.problems[10], 'Tailnet port 9000 is forwarded more than once.');
      for (const p of e.problems) assert.match(p, /^[^\n]+\.$/, 'one sentence');
    }
    assert.throws(() => parseForwardPorts(Array.from({ length: 65 }, (_, i) => String(i + 1))), /At most 64/);
  });
});

/** A local service on 127.0.0.1 (port 0: any free port). */
async function localServer(t: { after(f: () => unknown): void }, onConn: (s: Socket) => void): Promise<number> {
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {}); // a reset passed on from the tailnet side
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return (server.address() as { port: number }).port;
}

function setup(
  t: { after(f: () => unknown): void },
  extra: { connectTimeoutMs?: number; maxConnections?: number } = {},
) {
  const { a, b } = makeLivePair();
  const logs: string[] = [];
  const fwd = new PortForwarder({ listen: (port) => b.listen(port), log: (m) => logs.push(m), ...extra });
  t.after(() => fwd.close());
  /** A peer's connection to our tailnet port, from the other stack. */
  const dial = (port: number) =>
    new Promise<TcpSocket>((resolve, reject) => {
      const s = a.connect(V4.b, port);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  return { fwd, logs, dial };
}

/** Everything a stream sends until it ends, or the error that ended it. */
function drain(s: TcpSocket | Socket): Promise<{ bytes: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve({ bytes: Buffer.concat(chunks) }));
    s.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ bytes: Buffer.concat(chunks), error: e.code ?? e.message }),
    );
  });
}

const wait = (what: string, cond: () => boolean, ms = 5_000) =>
  new Promise<void>((resolve, reject) => {
    const end = Date.now() + ms;
    const poll = () => {
      if (cond()) return resolve();
      if (Date.now() > end) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 10);
    };
    poll();
  });

describe('PortForwarder', { timeout: 60_000 }, () => {
  test('4 MiB each way through an echo service arrive intact; the tailnet port maps to another local port', async (t) => {
    const echoPort = await localServer(t, (s) => s.pipe(s));
    const { fwd, dial } = setup(t);
    fwd.set([`2222=${echoPort}`]);
    const s = await dial(2222);
    const data = Buffer.from(seededBytes(7, 4 << 20));
    const got = drain(s);
    s.end(data);
    const r = await got;
    assert.equal(r.error, undefined);
    assert.equal(sha256(r.bytes), sha256(data));
  });

  test('half-close: the peer ends first and still reads the answer; the service ends first and still reads', async (t) => {
    let serviceGot = Buffer.alloc(0);
    const servicePort = await localServer(t, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        serviceGot = Buffer.concat(chunks);
        s.end(`got ${serviceGot.length} bytes\n`); // answers after the peer's FIN
      });
    });
    const { fwd, dial } = setup(t);
    fwd.set([`7000=${servicePort}`]);
    const s = await dial(7000);
    const answer = drain(s);
    s.end(Buffer.alloc(100_000, 1));
    assert.deepEqual(await answer, { bytes: Buffer.from('got 100000 bytes\n') });

    // The service says goodbye and ends its side first; the peer's bytes after that still reach it.
    let late = '';
    const byePort = await localServer(t, (c) => {
      c.end('bye\n');
      c.setEncoding('utf8').on('data', (d: string) => {
        late += d;
      });
    });
    fwd.set([`7000=${servicePort}`, `7001=${byePort}`]);
    const s2 = await dial(7001);
    const bye = drain(s2);
    assert.deepEqual(await bye, { bytes: Buffer.from('bye\n') });
    s2.end('after your FIN\n');
    await wait('the late bytes at the service', () => late === 'after your FIN\n');
  });

  test('nothing listening locally: the tailnet connection is reset, and the log says why', async (t) => {
    const free = await localServer(t, () => {});
    const { fwd, logs, dial } = setup(t);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    fwd.set([`8080=${deadPort}`, `8081=${free}`]);
    const s = await dial(8080);
    const r = await drain(s);
    assert.equal(r.error, 'ECONNRESET');
    assert.ok(
      logs.some((l) => l.includes(`nothing listens on 127.0.0.1:${deadPort}`)),
      logs.join('\n'),
    );
    await wait('the connection forgotten', () => fwd.connections === 0);
  });

  test('a cut on either side cuts the other: nothing is left open', async (t) => {
    const services: Socket[] = [];
    const port = await localServer(t, (c) => services.push(c));
    const { fwd, dial } = setup(t);
    fwd.set([`4000=${port}`]);
    // The peer resets: the service's connection closes.
    const s1 = await dial(4000);
    s1.write('x');
    await wait('the service connected', () => services.length === 1);
    const serviceClosed = new Promise((r) => services[0]?.once('close', r));
    s1.resetAndDestroy();
    await serviceClosed;
    // The service resets: the peer sees ECONNRESET.
    const s2 = await dial(4000);
    await wait('the second service connection', () => services.length === 2);
    const peer = drain(s2);
    services[1]?.resetAndDestroy();
    assert.equal((await peer).error, 'ECONNRESET');
    await wait('nothing carried', () => fwd.connections === 0);
  });

  test('a local service that never accepts: reset after the connect timeout', async (t) => {
    const { a, b } = makeLivePair();
    const logs: string[] = [];
    const fwd = new PortForwarder({
      listen: (port) => b.listen(port),
      connectLocal: () => new Socket(), // never connects: a blackholed local address
      log: (m) => logs.push(m),
      connectTimeoutMs: 200,
    });
    t.after(() => fwd.close());
    fwd.set(['9000']);
    const s = a.connect(V4.b, 9000);
    const r = await drain(s);
    assert.equal(r.error, 'ECONNRESET');
    assert.ok(
      logs.some((l) => l.includes('did not accept within 200 ms')),
      logs.join('\n'),
    );
  });

  test('connections are bounded: over the cap one is reset; when one ends there is room again', async (t) => {
    const held: Socket[] = [];
    const port = await localServer(t, (c) => {
      held.push(c);
      c.on('end', () => c.end());
    });
    const { fwd, logs, dial } = setup(t, { maxConnections: 2 });
    fwd.set([`5000=${port}`]);
    const s1 = await dial(5000);
    const s2 = await dial(5000);
    await wait('two carried', () => fwd.connections === 2 && held.length === 2);
    const s3 = await dial(5000);
    assert.equal((await drain(s3)).error, 'ECONNRESET');
    assert.ok(logs.some((l) => /too many connections/.test(l)));
    const end1 = drain(s1);
    s1.end();
    await end1;
    await wait('room again', () => fwd.connections === 1);
    const s4 = await dial(5000);
    await wait('the fourth carried', () => fwd.connections === 2 && held.length === 3);
    s2.destroy();
    s4.destroy();
  });

  test('set() stops, starts and re-points forwards; a bad entry changes nothing; close() ends it all', async (t) => {
    const hello = (text: string) => (c: Socket) => c.end(text);
    const one = await localServer(t, hello('one'));
    const two = await localServer(t, hello('two'));
    const { fwd, dial } = setup(t);
    /** What the service on a tailnet port says, with our side ended at once. */
    const said = async (port: number) => {
      const s = await dial(port);
      s.end();
      return (await drain(s)).bytes.toString();
    };
    fwd.set([`6000=${one}`, `6001=${one}`]);
    assert.equal(await said(6000), 'one');
    fwd.set([`6000=${two}`]); // 6000 re-pointed, 6001 dropped
    assert.equal(await said(6000), 'two');
    await assert.rejects(dial(6001), { code: 'ECONNREFUSED' });
    assert.throws(() => fwd.set(['6000', 'nonsense']), ForwardPortsError);
    assert.equal(await said(6000), 'two', 'unchanged after a bad set');
    const slow = await localServer(t, () => {}); // holds its connection open
    fwd.set([`6000=${two}`, `6002=${slow}`]);
    await wait('the finished connections forgotten', () => fwd.connections === 0);
    const held = await dial(6002);
    await wait('carried', () => fwd.connections === 1);
    const ended = drain(held);
    fwd.close();
    assert.equal((await ended).error, 'ECONNRESET');
    assert.equal(fwd.connections, 0);
    await assert.rejects(dial(6000), { code: 'ECONNREFUSED' });
  });
});
