// The engine against control servers that are wrong in each way a user may meet: a wrong Noise key,
// a web server answering 404 or 500, garbage after the upgrade, a server that stalls. Login must fail
// with a clear typed error; a connected node must back off between retries (no busy loop) and survive.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { keyToText } from '../../main/engine/crypto/key-text.ts';
import { createEngine } from '../../main/engine/engine.ts';
import { EngineError, type EngineEvent } from '../../main/engine/protocol.ts';

type Behaviour = 'wrong-key' | '404' | '500' | 'garbage' | 'stall-key' | 'stall-upgrade';

async function badServer(kind: Behaviour): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    hits++;
    if (kind === 'stall-key') return; // never answers
    if (kind === '404' || kind === '500') {
      res.writeHead(Number(kind), { 'content-type': 'text/html' }).end('<h1>nope</h1>');
      return;
    }
    if (req.url?.startsWith('/key')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ publicKey: keyToText('mkey', randomBytes(32)) }));
      return;
    }
    res.writeHead(404).end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (_req, socket: Socket) => {
    hits++;
    if (kind === 'stall-upgrade') return;
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n',
    );
    if (kind === 'garbage') socket.end(randomBytes(200));
    else socket.end(); // wrong key: the real server closes without a word
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const CASES: Array<[Behaviour, string, RegExp]> = [
  ['wrong-key', 'control-protocol', /closed the connection during the Noise handshake/],
  ['404', 'control-protocol', /answered 404 to GET \/key/],
  ['500', 'control-protocol', /answered 500 to GET \/key/],
  ['garbage', 'control-protocol', /handshake|record|response/],
  ['stall-key', 'control-unreachable', /did not answer within 1500 ms/],
  ['stall-upgrade', 'control-unreachable', /did not answer within 1500 ms|no Noise handshake response/],
];

for (const [kind, code, message] of CASES) {
  test(`login against a server that does "${kind}" fails with ${code}`, async () => {
    const srv = await badServer(kind);
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-bad-'));
    const engine = createEngine({ controlTimeoutMs: 1500 });
    try {
      await engine.handle('start', { stateDir: dir });
      await engine.handle('setPrefs', { controlURL: srv.url, wantRunning: true });
      const started = Date.now();
      await assert.rejects(
        engine.handle('login', { authKey: 'hskey-auth-test' }),
        (e: unknown) => e instanceof EngineError && e.code === code && message.test(e.message),
      );
      assert.ok(Date.now() - started < 10_000, 'fails within the timeout');
      const st = await engine.handle('status', {});
      assert.equal(st.state, 'NeedsLogin');
      assert.ok(st.reason && st.reason.length > 0, 'the reason is kept for the UI');
    } finally {
      await engine.close();
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('a logged-in node whose server went bad backs off between attempts and reports health', async () => {
  for (const kind of ['wrong-key', '500', 'garbage'] as const) {
    const srv = await badServer(kind);
    const dir = await mkdtemp(path.join(tmpdir(), 'trellis-bad-'));
    // A node that was logged in to this server before: it goes straight to the map loop on start.
    await writeFile(
      path.join(dir, 'prefs.json'),
      JSON.stringify({ prefs: { controlURL: srv.url, wantRunning: true }, loggedIn: true }),
      { mode: 0o600 },
    );
    const events: EngineEvent[] = [];
    const engine = createEngine({ controlTimeoutMs: 1500, backoff: { minMs: 300, maxMs: 2000 } });
    engine.onEvent((e) => events.push(e));
    try {
      const st = await engine.handle('start', { stateDir: dir });
      assert.equal(st.state, 'Starting');
      await new Promise((r) => setTimeout(r, 3000));
      const hits = srv.hits();
      // 300, 600, 1200 ms backoff (±20%) fits at most ~4 attempts of up to 2 requests each in 3 s.
      assert.ok(hits >= 2 && hits <= 10, `${kind}: ${hits} requests in 3 s`);
      const health = await engine.handle('status', {});
      assert.ok(
        health.health.some((h) => h.code === 'control-unreachable'),
        `${kind}: health says the control server is unreachable`,
      );
      assert.equal(health.state, 'Starting', 'still trying, not crashed');
    } finally {
      await engine.close();
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
});
