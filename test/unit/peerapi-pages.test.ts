// The PeerAPI's answers beyond Taildrop (docs/parity.md): the greeting at "/" for any method, the debug, ingress,
// Taildrive and connector paths refused as tailscaled refuses a peer without the capability, Wake-on-LAN's access
// and parameter checks, tailscaled's 404 for unknown paths, Go's error-answer headers, and the browser-only
// security headers. Over real HTTP on 127.0.0.1; the WoL broadcast itself is tested in the namespace lab.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Inbox } from '../../main/engine/taildrop/inbox.ts';
import { type Caller, PeerApi } from '../../main/engine/taildrop/peerapi.ts';
import { parseMac } from '../../main/engine/taildrop/peerapi-pages.ts';
import { magicPacket } from '../../main/engine/taildrop/wake-on-lan.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function withApi(
  caller: Caller,
  fn: (ask: (m: string, p: string, h?: Record<string, string>) => Promise<Answer>) => Promise<void>,
) {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-pages-'));
  const inbox = new Inbox(dir);
  await inbox.ensure();
  const api = new PeerApi({ inbox, identify: () => caller, fileSharing: () => true, log: () => {} });
  await api.listen(['127.0.0.1']);
  const ask = (method: string, p: string, headers: Record<string, string> = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const r = request({ host: '127.0.0.1', port: api.port4, method, path: p, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      r.setTimeout(5_000, () => r.destroy(new Error('timeout')));
      r.on('error', reject);
      r.end();
    });
  try {
    await fn(ask);
  } finally {
    api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const OWNER: Caller = {
  senderId: '7',
  name: 'laptop.tailnet.test',
  mayFileSend: true,
  userName: 'Ann <admin>',
  sameUser: true,
  sameUntaggedUser: true,
};
const STRANGER: Caller = { senderId: '8', name: 'other.tailnet.test', mayFileSend: false, userName: 'bob' };

test('"/" greets any method with 200 HTML naming the caller (escaped), HEAD without a body', async () => {
  await withApi(OWNER, async (ask) => {
    for (const m of ['GET', 'POST', 'OPTIONS']) {
      const a = await ask(m, '/?x=1');
      assert.equal(a.status, 200, m);
      assert.equal(a.headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(Number(a.headers['content-length']), Buffer.byteLength(a.body));
      assert.match(a.body, /Hello, Ann &lt;admin&gt; \(127\.0\.0\.1\)/);
      assert.match(a.body, /laptop\b/);
      assert.match(a.body, /belongs to you/);
    }
    const head = await ask('HEAD', '/');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });
  await withApi(STRANGER, async (ask) => {
    const a = await ask('GET', '/');
    assert.equal(a.status, 200);
    assert.doesNotMatch(a.body, /belongs to you/);
  });
});

test('capability-only paths answer as tailscaled answers a peer without the capability', async () => {
  await withApi(OWNER, async (ask) => {
    const want: Array<[string, string, number, string]> = [
      ['GET', '/v0/env', 403, 'denied; no debug access\n'],
      ['GET', '/v0/goroutines', 403, 'denied; no debug access\n'],
      ['GET', '/v0/metrics', 403, 'denied; no debug access\n'],
      ['GET', '/v0/magicsock', 403, 'denied; no debug access\n'],
      ['GET', '/v0/interfaces', 403, 'denied; no debug access\n'],
      ['GET', '/v0/sockstats', 403, 'denied; no debug access\n'],
      ['GET', '/v0/dnsfwd', 403, 'denied; no debug access\n'],
      ['GET', '/v0/doctor', 403, 'denied; no debug access\n'],
      ['POST', '/v0/ingress', 403, 'denied; no ingress cap\n'],
      ['GET', '/v0/drive/share', 404, 'taildrive not enabled\n'],
      ['GET', '/v0/connector/transit-ip', 501, ''],
      ['GET', '/nope', 404, 'unsupported peerapi path\n'],
      ['GET', '/v0/put', 404, 'unsupported peerapi path\n'],
    ];
    for (const [m, p, status, body] of want) {
      const a = await ask(m, p);
      assert.deepEqual([a.status, a.body], [status, body], `${m} ${p}`);
      if (body) {
        assert.equal(a.headers['x-content-type-options'], 'nosniff', p);
        assert.equal(a.headers['content-type'], 'text/plain; charset=utf-8', p);
      }
      assert.equal(Number(a.headers['content-length']), Buffer.byteLength(body), p);
    }
  });
});

test('Wake-on-LAN: same untagged user only, POST only, a valid mac required', async () => {
  await withApi(STRANGER, async (ask) => {
    assert.deepEqual(await ask('POST', '/v0/wol?mac=aa:bb:cc:dd:ee:ff').then((a) => [a.status, a.body]), [
      403,
      'no WoL access\n',
    ]);
  });
  await withApi(OWNER, async (ask) => {
    assert.deepEqual(await ask('GET', '/v0/wol').then((a) => [a.status, a.body]), [405, 'bad method\n']);
    assert.deepEqual(await ask('POST', '/v0/wol').then((a) => [a.status, a.body]), [400, "missing 'mac' param\n"]);
    assert.deepEqual(await ask('POST', '/v0/wol?mac=nonsense').then((a) => [a.status, a.body]), [
      400,
      "bad 'mac' param\n",
    ]);
  });
  assert.deepEqual(parseMac('AA:bb:0c:dd:ee:0f'), Uint8Array.from([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]));
  assert.deepEqual(parseMac('aa-bb-cc-dd-ee-ff')?.length, 6);
  assert.deepEqual(parseMac('aabb.ccdd.eeff')?.length, 6);
  for (const bad of ['', 'aa:bb:cc:dd:ee', 'aa:bb-cc:dd:ee:ff', 'gg:bb:cc:dd:ee:ff', 'aa:bb:cc:dd:ee:ff:00']) {
    assert.equal(parseMac(bad), undefined, bad);
  }
  const magic = magicPacket(Uint8Array.from([1, 2, 3, 4, 5, 6]));
  assert.equal(magic.length, 102);
  assert.deepEqual([...magic.subarray(0, 6)], [255, 255, 255, 255, 255, 255]);
  assert.deepEqual([...magic.subarray(96)], [1, 2, 3, 4, 5, 6]);
});

test('Taildrop: a caller without permission gets 403 before a wrong method is judged, as from tailscaled', async () => {
  await withApi(STRANGER, async (ask) => {
    assert.deepEqual(await ask('DELETE', '/v0/put/x.txt').then((a) => [a.status, a.body]), [
      403,
      'Taildrop disabled; no storage directory\n',
    ]);
  });
  await withApi(OWNER, async (ask) => {
    const a = await ask('DELETE', '/v0/put/x.txt');
    assert.deepEqual([a.status, a.body], [405, 'expected method GET or PUT\n']);
    const list = await ask('GET', '/v0/put/');
    assert.deepEqual(
      [list.status, list.body, list.headers['content-type']],
      [200, 'null\n', 'text/plain; charset=utf-8'],
    );
    const none = await ask('GET', '/v0/put/none.txt');
    assert.deepEqual(
      [none.status, none.body, none.headers['content-type'], none.headers['content-length']],
      [200, '', undefined, '0'],
    );
  });
});

test('a Referer or Origin refuses the request; an empty one names nothing and does not, as with Go', async () => {
  await withApi(OWNER, async (ask) => {
    const named: Array<Record<string, string>> = [{ referer: 'http://x.example/' }, { origin: 'http://x.example' }];
    for (const h of named) {
      assert.deepEqual(await ask('GET', '/', h).then((a) => [a.status, a.body]), [403, 'invalid peerapi request\n']);
    }
    const empty: Array<Record<string, string>> = [{ referer: '' }, { origin: '' }];
    for (const h of empty) assert.equal((await ask('GET', '/', h)).status, 200);
  });
});

test('security headers go to browsers only', async () => {
  await withApi(OWNER, async (ask) => {
    const go = await ask('GET', '/', { 'user-agent': 'Go-http-client/1.1', 'accept-encoding': 'gzip' });
    assert.equal(go.headers['content-security-policy'], undefined);
    const browsers: Array<Record<string, string>> = [
      { 'user-agent': 'Mozilla/5.0' },
      { 'accept-encoding': 'gzip, deflate, br' },
      { 'accept-language': 'de' },
      { 'user-agent': 'a b c d' },
    ];
    for (const h of browsers) {
      const a = await ask('GET', '/', h);
      assert.match(String(a.headers['content-security-policy']), /default-src 'none'/, JSON.stringify(h));
      assert.equal(a.headers['x-frame-options'], 'DENY');
      assert.equal(a.headers['x-content-type-options'], 'nosniff');
    }
  });
});
