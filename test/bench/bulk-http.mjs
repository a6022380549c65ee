#!/usr/bin/env node
// HTTP bulk endpoint for the userspace bench, run inside a lab namespace. No dependencies.
//   node bulk-http.mjs <addr> <port>
//   GET /bytes/<n>        answers n bytes (a 1 MiB block of random bytes, repeated) with a Content-Length
//   PUT or POST /sink     reads the body to its end and answers {"bytes":<bytes read>}
// The first stdout line is {"event":"listening",...}. Hard timeout: BULK_TIMEOUT_MS (default 1 h). Exit codes: 0 on
// SIGTERM, 1 error, 2 timeout, 64 usage.
import { randomBytes } from 'node:crypto';
import http from 'node:http';

const BLOCK = randomBytes(1 << 20);
const MAX_BYTES = 1e12;
const timeoutMs = Number(process.env.BULK_TIMEOUT_MS ?? 3_600_000);

function fail(msg, code = 1) {
  process.stderr.write(`bulk-http: ${msg}\n`);
  process.exit(code);
}

/** Writes n bytes to res, waiting for 'drain' whenever the socket's buffer is full. */
function stream(res, n) {
  let left = n;
  const pump = () => {
    while (left > 0) {
      const chunk = left >= BLOCK.length ? BLOCK : BLOCK.subarray(0, left);
      left -= chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  res.on('error', () => {});
  pump();
}

const server = http.createServer((req, res) => {
  const bytesPath = /^\/bytes\/(\d{1,13})$/.exec(req.url ?? '');
  if (req.method === 'GET' && bytesPath) {
    const n = Number(bytesPath[1]);
    if (n > MAX_BYTES) {
      res.writeHead(400).end('too many bytes\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
    stream(res, n);
    return;
  }
  if ((req.method === 'PUT' || req.method === 'POST') && req.url === '/sink') {
    let bytes = 0;
    req.on('data', (d) => {
      bytes += d.length;
    });
    req.on('end', () =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ bytes })}\n`),
    );
    req.on('error', () => res.destroy());
    return;
  }
  res.writeHead(404).end('not found\n');
});

const [addr, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (!addr || !Number.isInteger(port) || port < 1 || port > 65535) fail('usage: bulk-http.mjs <addr> <port>', 64);
setTimeout(() => fail(`timeout after ${timeoutMs} ms`, 2), timeoutMs).unref();
process.on('SIGTERM', () => process.exit(0));
server.on('error', (e) => fail(`listen ${addr}:${port}: ${e.message}`));
server.listen({ host: addr, port }, () => {
  process.stdout.write(`${JSON.stringify({ event: 'listening', addr, port: server.address().port })}\n`);
});
