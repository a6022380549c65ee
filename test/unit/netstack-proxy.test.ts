// The SOCKS5 and HTTP proxies judged by curl: curl talks to the proxies over real loopback sockets; the proxies
// dial through one userspace stack, across a link, into a second stack whose listener forwards to a real HTTP
// server. Names resolve through an injected resolver (MagicDNS later). UDP ASSOCIATE is driven by a small client.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createConnection, connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { DialFailureReport, ProxyDialError, splice } from '../../main/engine/netstack/proxy/dial.ts';
import { HttpProxyServer } from '../../main/engine/netstack/proxy/http.ts';
import { decodeAddress, encodeAddress, Socks5Server } from '../../main/engine/netstack/proxy/socks5.ts';
import { makeLivePair, seededBytes, sha256, V4, V6 } from './netstack-link.ts';

const BIG = Buffer.from(seededBytes(42, 20 * 1024 * 1024));
const { a, b } = makeLivePair();
const origin = createHttpServer((req, res) => {
  if (req.url === '/big') {
    res.writeHead(200, { 'Content-Length': BIG.length });
    res.end(BIG);
  } else {
    const body = `hello ${req.method} ${req.url} host=${req.headers.host} proxy=${req.headers['proxy-connection'] ?? '-'}\n`;
    res.end(body);
  }
});
let originPort = 0;
const resolve = async (name: string) => {
  if (name === 'peer.tailnet.test') return [V4.b];
  if (name === 'peer6.tailnet.test') return [V6.b];
  throw new Error('no such name');
};
const dial = (address: string, port: number) =>
  new Promise<Duplex>((ok, fail) => {
    const s = a.connect(address, port);
    s.once('connect', () => ok(s));
    s.once('error', fail);
  });
const openUdp = () => a.bindUdp();
/** What each proxy told its owner about failed dials (the client only sees a code). */
const failures: string[] = [];
const socks = new Socks5Server({
  dial,
  resolve,
  openUdp,
  handshakeTimeoutMs: 500,
  onDialFailure: (e) => failures.push(`socks ${e.kind}: ${e.message}`),
});
const socksAuth = new Socks5Server({ dial, resolve, credentials: { username: 'alice', password: 's3cret' } });
const http = new HttpProxyServer({
  dial,
  resolve,
  headTimeoutMs: 500,
  maxHeadBytes: 4096,
  onDialFailure: (e) => failures.push(`http ${e.kind}: ${e.message}`),
});
let ports = { socks: 0, socksAuth: 0, http: 0 };

before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  originPort = (origin.address() as AddressInfo).port;
  // The peer stack: port 80 forwards to the real HTTP server; UDP port 7 echoes.
  b.listen(80, (s) => {
    const up = netConnect(originPort, '127.0.0.1');
    splice(s, up);
  });
  const echo = b.bindUdp(7);
  echo.on('message', (d: Buffer, r: { address: string; port: number }) => echo.send(d, r.port, r.address));
  ports = {
    socks: (await socks.listen(0)).port,
    socksAuth: (await socksAuth.listen(0)).port,
    http: (await http.listen(0)).port,
  };
});

after(async () => {
  await Promise.all([socks.close(), socksAuth.close(), http.close()]);
  origin.close();
  a.close();
  b.close();
});

function curl(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((done) => {
    execFile(
      'nice',
      ['-n', '19', 'curl', '-sS', '--max-time', '120', ...args],
      { encoding: 'buffer', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() });
      },
    );
  });
}

const hash = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('SOCKS5 with a MagicDNS-style name: curl fetches 20 MB intact through the stack pair', async () => {
  const r = await curl(['--socks5-hostname', `127.0.0.1:${ports.socks}`, 'http://peer.tailnet.test/big']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(hash(r.stdout), sha256(BIG));
});

test('SOCKS5 by IPv4 and IPv6 address', async () => {
  const r4 = await curl(['--socks5', `127.0.0.1:${ports.socks}`, `http://${V4.b}/x`]);
  assert.equal(r4.code, 0, r4.stderr);
  assert.match(r4.stdout.toString(), /^hello GET \/x host=100\.64\.0\.2/);
  const r6 = await curl(['--socks5-hostname', `127.0.0.1:${ports.socks}`, `http://[${V6.b}]/y`]);
  assert.equal(r6.code, 0, r6.stderr);
  assert.match(r6.stdout.toString(), /^hello GET \/y/);
  const n6 = await curl(['--socks5-hostname', `127.0.0.1:${ports.socks}`, 'http://peer6.tailnet.test/z']);
  assert.equal(n6.code, 0, n6.stderr);
});

test('SOCKS5 failures: an unknown name, a refused port and a bad password get SOCKS errors, not hangs', async () => {
  const unknown = await curl(['--socks5-hostname', `127.0.0.1:${ports.socks}`, 'http://nope.tailnet.test/']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unreachable|SOCKS5/i);
  const refused = await curl(['--socks5', `127.0.0.1:${ports.socks}`, `http://${V4.b}:81/`]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /refused|SOCKS5/i);
  assert.ok(failures.includes('socks resolve: cannot resolve nope.tailnet.test: no such name'), failures.join('; '));
  assert.ok(failures.includes(`socks refused: ${V4.b} port 81 refused the connection`), failures.join('; '));
  const good = await curl([
    '--socks5-hostname',
    `alice:s3cret@127.0.0.1:${ports.socksAuth}`,
    'http://peer.tailnet.test/auth',
  ]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout.toString(), /^hello GET \/auth/);
  const bad = await curl([
    '--socks5-hostname',
    `alice:wrong@127.0.0.1:${ports.socksAuth}`,
    'http://peer.tailnet.test/auth',
  ]);
  assert.notEqual(bad.code, 0);
  const none = await curl(['--socks5-hostname', `127.0.0.1:${ports.socksAuth}`, 'http://peer.tailnet.test/auth']);
  assert.notEqual(none.code, 0, 'a server with credentials refuses clients without them');
});

test('HTTP proxy: plain absolute-URI requests (20 MB intact) and CONNECT tunnels', async () => {
  const big = await curl(['-x', `http://127.0.0.1:${ports.http}`, 'http://peer.tailnet.test/big']);
  assert.equal(big.code, 0, big.stderr);
  assert.equal(hash(big.stdout), sha256(BIG));
  const plain = await curl(['-x', `http://127.0.0.1:${ports.http}`, 'http://peer.tailnet.test/q?a=1']);
  assert.match(plain.stdout.toString(), /^hello GET \/q\?a=1 host=peer\.tailnet\.test proxy=-/);
  const tunnel = await curl(['-p', '-x', `http://127.0.0.1:${ports.http}`, `http://[${V6.b}]/t`]);
  assert.equal(tunnel.code, 0, tunnel.stderr);
  assert.match(tunnel.stdout.toString(), /^hello GET \/t/);
});

test('HTTP proxy failures answer 502 with a plain sentence', async () => {
  const r = await curl(['-i', '-x', `http://127.0.0.1:${ports.http}`, 'http://nope.tailnet.test/']);
  assert.match(r.stdout.toString(), /^HTTP\/1\.1 502 Bad Gateway/);
  assert.match(r.stdout.toString(), /cannot resolve nope\.tailnet\.test: no such name/);
  const refused = await curl(['-i', '-x', `http://127.0.0.1:${ports.http}`, `http://${V4.b}:81/`]);
  assert.match(refused.stdout.toString(), /^HTTP\/1\.1 502 Bad Gateway[\s\S]*refused the connection/);
  assert.ok(failures.includes(`http refused: ${V4.b} port 81 refused the connection`), failures.join('; '));
  const bad = await curl(['-i', '-x', `http://127.0.0.1:${ports.http}`, 'ftp://x/']);
  assert.match(bad.stdout.toString(), /^HTTP\/1\.1 400 Bad Request[\s\S]*forwards http:\/\/ only/);
});

test('SOCKS5 UDP ASSOCIATE relays datagrams to a tailnet UDP echo and back', async () => {
  const ctl = createConnection(ports.socks, '127.0.0.1');
  const reads: Buffer[] = [];
  ctl.on('data', (d) => reads.push(d));
  const readN = async (n: number) => {
    for (let i = 0; i < 200 && Buffer.concat(reads).length < n; i++) await new Promise((r) => setTimeout(r, 10));
    const all = Buffer.concat(reads.splice(0));
    assert.ok(all.length >= n, 'the proxy answered');
    return all;
  };
  await new Promise((r) => ctl.once('connect', r));
  ctl.write(Buffer.from([5, 1, 0]));
  assert.deepEqual([...(await readN(2))], [5, 0]);
  ctl.write(Buffer.concat([Buffer.from([5, 3, 0]), encodeAddress('0.0.0.0', 0)]));
  const rep = await readN(10);
  assert.equal(rep[1], 0, 'UDP ASSOCIATE succeeded');
  const relay = decodeAddress(rep, 3)!;
  const u = createSocket('udp4');
  const got = new Promise<Buffer>((r) => u.once('message', (m) => r(m)));
  await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
  const header = Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(V4.b, 7)]);
  u.send(Buffer.concat([header, Buffer.from('ping over the tailnet')]), relay.port, relay.host);
  const reply = await Promise.race([
    got,
    new Promise<Buffer>((_, no) => setTimeout(() => no(new Error('no UDP reply')), 5000)),
  ]);
  const from = decodeAddress(reply, 3)!;
  assert.equal(from.host, V4.b);
  assert.equal(from.port, 7);
  assert.equal(reply.subarray(3 + from.used).toString(), 'ping over the tailnet');
  u.close();
  ctl.destroy();
});

/** Connects, sends `data`, and collects what the server says until it closes (bounded by 5 s). */
function rawExchange(port: number, data: string | Buffer): Promise<{ reply: Buffer; ms: number }> {
  return new Promise((done, fail) => {
    const start = Date.now();
    const s = createConnection(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => fail(new Error('the proxy did not close the connection')), 5000);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      done({ reply: Buffer.concat(chunks), ms: Date.now() - start });
    });
    if (data.length) s.write(data);
  });
}

test('handshakes are bounded: silent clients are dropped after the timeout, oversized heads get 400', async () => {
  const silentSocks = await rawExchange(ports.socks, '');
  assert.equal(silentSocks.reply.length, 0);
  assert.ok(silentSocks.ms >= 400, 'closed by the handshake timeout');
  const partialHttp = await rawExchange(ports.http, 'GET http://peer.tailnet.test/ HTTP/1.1\r\nHost: x\r\n');
  assert.match(partialHttp.reply.toString(), /^HTTP\/1\.1 400 Bad Request[\s\S]*timed out/);
  const huge = await rawExchange(
    ports.http,
    `GET http://peer.tailnet.test/ HTTP/1.1\r\nX: ${'a'.repeat(8000)}\r\n\r\n`,
  );
  assert.match(huge.reply.toString(), /^HTTP\/1\.1 400 Bad Request[\s\S]*too long/);
  const notSocks = await rawExchange(ports.socks, Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0]));
  assert.equal(notSocks.reply.length, 0, 'a SOCKS4 greeting is refused by closing');
});

test('dial failures reach the log at most 20 a minute; the next line says how many were held back', () => {
  const lines: string[] = [];
  let now = 1_000_000;
  const report = new DialFailureReport(
    (m) => lines.push(m),
    20,
    () => now,
  );
  const e = new ProxyDialError('refused', '100.64.0.2 port 81 refused the connection');
  for (let i = 0; i < 50; i++) report.report('SOCKS5', e);
  assert.equal(lines.length, 20);
  assert.equal(lines[0], 'SOCKS5 proxy: 100.64.0.2 port 81 refused the connection');
  now += 59_999;
  report.report('HTTP', e);
  assert.equal(lines.length, 20, 'still the same minute');
  now += 1;
  report.report('HTTP', e);
  assert.equal(lines.length, 21);
  assert.equal(lines[20], 'HTTP proxy: 100.64.0.2 port 81 refused the connection (31 more not logged)');
});
