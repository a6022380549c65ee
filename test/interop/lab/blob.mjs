#!/usr/bin/env node
// Deterministic TCP bulk transfer for the interop lab. No dependencies.
//   node blob.mjs serve <addr> <port>               accept one connection, hash until EOF, print JSON, exit
//   node blob.mjs send  <addr> <port> <bytes> <seed> stream pseudo-random bytes, print JSON, exit
// The first stdout line of `serve` is {"event":"listening",...}; the last line of either is the result JSON.
// Hard timeout: BLOB_TIMEOUT_MS (default 120000). Exit codes: 0 ok, 1 error, 2 timeout, 64 usage.
import { createHash } from 'node:crypto';
import net from 'node:net';

const CHUNK = 64 * 1024;
const timeoutMs = Number(process.env.BLOB_TIMEOUT_MS ?? 120_000);

function fail(msg, code = 1) {
  process.stderr.write(`blob: ${msg}\n`);
  process.exit(code);
}

function unbracket(addr) {
  return addr.startsWith('[') && addr.endsWith(']') ? addr.slice(1, -1) : addr;
}

function parsePort(s) {
  const port = Number(s);
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad port ${s}`, 64);
  return port;
}

// xoshiro128** seeded by splitmix32: fast, deterministic, good enough to defeat compression and reordering luck.
function makePrng(seed) {
  let x = seed >>> 0;
  const splitmix = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  if ((a | b | c | d) === 0) a = 1;
  return (out) => {
    for (let i = 0; i < out.length; i++) {
      const r = Math.imul(((Math.imul(b, 5) << 7) | (Math.imul(b, 5) >>> 25)) >>> 0, 9) >>> 0;
      const t = (b << 9) >>> 0;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = ((d << 11) | (d >>> 21)) >>> 0;
      out[i] = r;
    }
  };
}

function serve(addr, port) {
  const server = net.createServer({ allowHalfOpen: true });
  let accepted = false;
  server.on('connection', (sock) => {
    if (accepted) {
      sock.destroy();
      return;
    }
    accepted = true;
    server.close();
    const hash = createHash('sha256');
    let bytes = 0;
    const started = process.hrtime.bigint();
    sock.on('data', (d) => {
      hash.update(d);
      bytes += d.length;
    });
    sock.on('error', (e) => fail(`receive: ${e.message}`));
    sock.on('end', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      sock.end();
      process.stdout.write(`${JSON.stringify({ event: 'done', sha256: hash.digest('hex'), bytes, seconds })}\n`, () =>
        process.exit(0),
      );
    });
  });
  server.on('error', (e) => fail(`listen ${addr} ${port}: ${e.message}`));
  server.listen({ host: unbracket(addr), port, ipv6Only: addr.includes(':') }, () => {
    process.stdout.write(`${JSON.stringify({ event: 'listening', addr, port: server.address().port })}\n`);
  });
}

function send(addr, port, total, seed) {
  const hash = createHash('sha256');
  const prng = makePrng(seed);
  const started = process.hrtime.bigint();
  let sent = 0;
  const sock = net.connect({ host: unbracket(addr), port });
  sock.on('error', (e) => fail(`send: ${e.message}`));
  const pump = () => {
    while (sent < total) {
      // a fresh buffer per chunk: the socket may still hold the previous one
      const words = new Uint32Array(CHUNK / 4);
      prng(words);
      const n = Math.min(CHUNK, total - sent);
      const chunk = Buffer.from(words.buffer, 0, n);
      hash.update(chunk);
      sent += n;
      if (!sock.write(chunk)) {
        sock.once('drain', pump);
        return;
      }
    }
    sock.end();
  };
  sock.on('connect', pump);
  sock.on('close', (hadError) => {
    if (hadError) fail('connection closed with error');
    if (sent !== total) fail(`connection closed after ${sent} of ${total} bytes`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stdout.write(
      `${JSON.stringify({ event: 'done', sha256: hash.digest('hex'), bytes: sent, seconds })}\n`,
      () => process.exit(0),
    );
  });
  sock.resume(); // drain whatever the server might send so 'close' fires
}

const [mode, addr, portArg, bytesArg, seedArg] = process.argv.slice(2);
setTimeout(() => fail(`timeout after ${timeoutMs} ms`, 2), timeoutMs).unref();
if (mode === 'serve' && addr && portArg) serve(addr, parsePort(portArg));
else if (mode === 'send' && addr && portArg && bytesArg) {
  const total = Number(bytesArg);
  if (!Number.isSafeInteger(total) || total < 0) fail(`bad byte count ${bytesArg}`, 64);
  send(addr, parsePort(portArg), total, Number(seedArg ?? 1) >>> 0);
} else fail('usage: blob.mjs serve <addr> <port> | send <addr> <port> <bytes> <seed>', 64);
