// The engine's own TCP connections (control, DERP) through bypassConnect: they connect and carry data like
// net.connect's, by address or by name, report refusals as errors, and carry the bypass mark where the process
// may set it (root on Linux; `ss -e` in the exit-node lab shows the mark on the daemon's sockets).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { bypassConnect, bypassMarkWorks } from '../../main/engine/routes/bypass-socket.ts';

async function hello(): Promise<Server> {
  const srv = createServer((c) => c.end('hello'));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return srv;
}

function read(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let d = '';
    const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5_000);
    s.on('data', (b) => (d += b));
    s.on('end', () => {
      clearTimeout(timer);
      resolve(d);
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

test('bypassConnect: by address and by name, with a connect event and the data', async () => {
  const srv = await hello();
  const port = (srv.address() as { port: number }).port;
  try {
    const byAddr = bypassConnect({ host: '127.0.0.1', port });
    await once(byAddr, 'connect');
    assert.equal(await read(byAddr), 'hello');
    const byName = bypassConnect({ host: 'localhost', port, family: 4 });
    assert.equal(await read(byName), 'hello');
  } finally {
    srv.close();
  }
});

test('bypassConnect: a refused connection is an error on the socket', async () => {
  const srv = await hello();
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  const s = bypassConnect({ host: '127.0.0.1', port });
  const [err] = (await once(s, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
});

test('the bypass mark is set exactly where the process may set it', () => {
  const may = process.platform === 'linux' && process.getuid?.() === 0;
  assert.equal(bypassMarkWorks(), may);
});
