// `trellis web` off loopback: refused without TLS (the token would cross the network in plain text); with a
// certificate it serves HTTPS and accepts only the certificate's names as Host, so a forged Host gets nowhere.
// Certificates are made here with the openssl command line.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { parseWebArgs } from '../../main/cli/web.ts';
import { RequestGuard } from '../../main/web/guard.ts';
import { startWebServer, type WebServer } from '../../main/web/server.ts';
import { certificateCovers, isLoopbackHost, loadTls, type TlsMaterial } from '../../main/web/tls.ts';
import type { ApiBackend, ApiEventMessage } from '../../preload/api.ts';
import { tempIsolatedEnv } from '../isolated-env.ts';

const TRELLIS = fileURLToPath(new URL('../../main/cli/trellis.mjs', import.meta.url));
const NAME = 'trellis.test';
const root = mkdtempSync(join(tmpdir(), 'trellis-web-tls-'));
const staticDir = join(root, 'dist');
const file = (name: string) => join(root, name);

/** A self-signed P-256 certificate and its key; san = the subjectAltName extension, or none. */
function makeCert(base: string, san?: string): void {
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'];
  args.push('-keyout', file(`${base}.key`), '-out', file(`${base}.crt`), '-subj', `/CN=${NAME}`);
  if (san) args.push('-addext', `subjectAltName=${san}`);
  execFileSync('openssl', args, { stdio: 'ignore' });
}

const backend: ApiBackend = {
  call: async () => undefined as never,
  onEvent: (_l: (m: ApiEventMessage) => void) => () => {},
};
let tls: TlsMaterial;
let web: WebServer;

before(async () => {
  mkdirSync(staticDir);
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Trellis</title>');
  makeCert('good', `DNS:${NAME},IP:192.0.2.7,IP:::1`);
  makeCert('other', `DNS:other.test`);
  makeCert('nosan');
  writeFileSync(file('junk.crt'), 'not a certificate\n');
  tls = await loadTls({ certPath: file('good.crt'), keyPath: file('good.key') });
  // Bound to loopback so the test sends nothing off the machine; the checks are those of any TLS bind.
  web = await startWebServer({ backend, staticDir, uploadDir: root, tls, host: '127.0.0.1', port: 0 });
});

after(async () => {
  await web?.close();
  rmSync(root, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** GET over TLS to 127.0.0.1, verifying the server as `servername` against the test certificate. */
function httpsGet(path: string, host: string, servername = NAME): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: web.port, path, servername, ca: tls.cert, headers: { host } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function wssConnect(headers: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // servername (passed on to tls.connect) is missing from ws's option types, hence no object literal here.
    const options = { ca: tls.cert, servername: NAME, headers };
    const ws = new WebSocket(`wss://127.0.0.1:${web.port}/api?token=${web.token}`, options);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

test('a non-loopback --host without --tls-cert/--tls-key is refused with one sentence', () => {
  for (const host of ['0.0.0.0', '::', '192.0.2.7', 'box.example', '', '::ffff:10.0.0.1']) {
    assert.throws(
      () => parseWebArgs(['--host', host, '--socket', '/x.sock'], {}, '/home/u'),
      (e: Error) =>
        e.name === 'UsageError' &&
        e.message ===
          `--host ${host || "''"} is reachable from other machines; give --tls-cert and --tls-key so the token ` +
            'does not cross the network in plain text',
      host,
    );
  }
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '::ffff:127.0.0.1']) {
    assert.equal(parseWebArgs(['--host', host], {}, '/home/u').tls, undefined, host);
  }
  const withTls = parseWebArgs(['--host', '0.0.0.0', '--tls-cert', 'c.pem', '--tls-key', 'k.pem'], {}, '/home/u');
  assert.deepEqual(withTls.tls, { certPath: 'c.pem', keyPath: 'k.pem' });
  assert.throws(() => parseWebArgs(['--host', '0.0.0.0', '--tls-cert', 'c.pem'], {}, '/'), /go together/);
  assert.throws(() => parseWebArgs(['--tls-key', 'k.pem'], {}, '/'), /go together/);
});

test('trellis web --host 0.0.0.0 exits 2 with that sentence before opening anything', async () => {
  const home = tempIsolatedEnv();
  try {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [TRELLIS, 'web', '--host', '0.0.0.0', '--port', '0', '--socket', join(home.dir, 'none.sock')],
        { env: { ...process.env, ...home.env }, timeout: 30_000 },
        (err, _stdout, stderr) => resolve({ code: err ? (err.code as number) : 0, stderr }),
      );
      child.stdin?.end();
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^trellis web: --host 0\.0\.0\.0 is reachable from other machines; give --tls-cert/);
  } finally {
    home.remove();
  }
});

test('the library refuses a non-loopback bind without TLS too', async () => {
  await assert.rejects(
    startWebServer({ backend, staticDir, uploadDir: root, host: '0.0.0.0', port: 0 }),
    /0\.0\.0\.0 is reachable from other machines; it is served only with TLS/,
  );
});

test('loadTls: each bad pair gets its own sentence naming the file', async () => {
  const load = (cert: string, key: string) => loadTls({ certPath: file(cert), keyPath: file(key) });
  await assert.rejects(load('good.crt', 'other.key'), /--tls-key .*other\.key is not the key of the certificate in/);
  await assert.rejects(load('junk.crt', 'good.key'), /--tls-cert .*junk\.crt is not a PEM certificate/);
  await assert.rejects(load('good.crt', 'junk.crt'), /--tls-key .*junk\.crt is not a PEM private key/);
  await assert.rejects(load('nosan.crt', 'nosan.key'), /nosan\.crt names no host \(no DNS or IP subjectAltName\)/);
  await assert.rejects(load('missing.crt', 'good.key'), /cannot read --tls-cert .*missing\.crt: ENOENT/);
  assert.deepEqual(tls.names, [NAME, '192.0.2.7', '::1']);
  assert.equal(tls.cert.toString(), readFileSync(file('good.crt'), 'utf8'));
});

test('over HTTPS the page answers to the certificate names; a forged Host is refused', async () => {
  assert.equal(web.url, `https://${NAME}:${web.port}/?token=${web.token}`);
  const page = `/?token=${web.token}`;
  const ok = await httpsGet(page, `${NAME}:${web.port}`);
  assert.equal(ok.status, 200);
  assert.equal(ok.body, '<!doctype html><title>Trellis</title>');
  assert.match(String(ok.headers['content-security-policy']), new RegExp(`connect-src 'self' wss://${NAME}:`));
  assert.equal((await httpsGet(page, `TRELLIS.test:${web.port}`)).status, 200, 'names are case-insensitive');
  assert.equal((await httpsGet(page, `192.0.2.7:${web.port}`)).status, 200, 'an IP subjectAltName');
  assert.equal((await httpsGet(page, `[::1]:${web.port}`)).status, 200, 'an IPv6 subjectAltName');
  for (const forged of [`evil.example:${web.port}`, `127.0.0.1:${web.port}`, `localhost:${web.port}`, NAME]) {
    const r = await httpsGet(page, forged);
    assert.equal(r.status, 403, forged);
    assert.equal(r.body, 'Forbidden: unexpected Host header.\n');
  }
  assert.equal((await httpsGet(`/?token=x`, `${NAME}:${web.port}`)).status, 403, 'the token is still needed');
});

test('plain HTTP to the TLS port gets no page', async () => {
  const r = await new Promise<number | Error>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: web.port, path: `/?token=${web.token}` }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e) => resolve(e));
    req.end();
  });
  assert.ok(r instanceof Error || r !== 200, `answered ${r}`);
});

test('the WebSocket runs over TLS and needs a certificate name as Host and the https Origin', async () => {
  const hostHeader = `${NAME}:${web.port}`;
  const ws = await wssConnect({ host: hostHeader, origin: `https://${hostHeader}` });
  const closed = new Promise((resolve) => ws.once('close', resolve));
  ws.close();
  await closed;
  await assert.rejects(wssConnect({ host: `evil.example:${web.port}` }), /status 403/);
  await assert.rejects(wssConnect({ host: hostHeader, origin: `http://${hostHeader}` }), /status 403/);
  await assert.rejects(wssConnect({ host: hostHeader, origin: `https://evil.example:${web.port}` }), /status 403/);
});

test('Host rules: default port, wildcard names, IPv6 spellings, loopback', () => {
  const req = (host: string, origin?: string) => ({ headers: { host, origin } }) as unknown as IncomingMessage;
  const g = new RequestGuard({ token: 't', host: '0.0.0.0', port: 443, tlsNames: ['*.lan.test', 'fd00::1'] });
  assert.equal(g.hostAllowed(req('box.lan.test')), true, 'port 443 may be left out');
  assert.equal(g.hostAllowed(req('box.lan.test:443')), true);
  assert.equal(g.hostAllowed(req('box.lan.test:8443')), false);
  assert.equal(g.hostAllowed(req('a.box.lan.test')), false, 'a wildcard covers one label');
  assert.equal(g.hostAllowed(req('lan.test')), false);
  assert.equal(g.hostAllowed(req('[FD00:0:0::1]')), true);
  assert.equal(g.hostAllowed(req('box.lan.test:443@evil.example')), false);
  assert.equal(g.originAllowed(req('box.lan.test', 'https://box.lan.test')), true);
  assert.equal(g.originAllowed(req('box.lan.test', 'null')), false);
  assert.equal(certificateCovers(['192.0.2.7'], '192.0.2.7'), true);
  assert.equal(certificateCovers(['*.0.2.7'], '192.0.2.7'), false, 'a wildcard never covers an address');
  assert.equal(isLoopbackHost('[::1]'), true);
  assert.equal(isLoopbackHost('::ffff:0.127.0.1'), false);
  const plain = new RequestGuard({ token: 't', host: '127.0.0.1', port: 80 });
  assert.equal(plain.hostAllowed(req('localhost')), true, 'port 80 may be left out over HTTP');
  assert.equal(plain.originAllowed(req('localhost', 'https://localhost')), false, 'the scheme must match');
});
