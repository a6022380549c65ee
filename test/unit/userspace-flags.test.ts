// `trellis daemon --tun userspace-networking` and its proxy flags: addresses are checked before anything starts,
// and every mistake gets one plain usage sentence and exit 2.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inTailnetRanges } from '../../main/engine/datapath/netstack-port.ts';
import { parseAddress } from '../../main/engine/packet/ip.ts';
import { ProxyAddressError, parseListenAddress } from '../../main/engine/services/userspace-proxies.ts';
import { tempIsolatedEnv } from '../isolated-env.ts';

const TRELLIS = fileURLToPath(new URL('../../main/cli/trellis.mjs', import.meta.url));
const run = promisify(execFile);

test('listen addresses: IPv4, [IPv6], localhost (127.0.0.1), port 0-65535', () => {
  assert.deepEqual(parseListenAddress('localhost:1055', 'x'), { host: '127.0.0.1', port: 1055 });
  assert.deepEqual(parseListenAddress('127.0.0.1:0', 'x'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListenAddress('[::1]:1056', 'x'), { host: '::1', port: 1056 });
  assert.deepEqual(parseListenAddress(':1055', 'x'), { host: '127.0.0.1', port: 1055 });
  for (const bad of ['1055', 'localhost', 'example.com:1055', '::1:1055', '127.0.0.1:65536', '127.0.0.1:-1', '']) {
    assert.throws(() => parseListenAddress(bad, 'the SOCKS5 address'), ProxyAddressError, bad);
  }
  assert.throws(() => parseListenAddress('host.example:1', '--socks5-server'), /--socks5-server must name an IP/);
});

test('tailnet ranges: 100.64.0.0/10 and fd7a:115c:a1e0::/48 only', () => {
  for (const a of ['100.64.0.1', '100.127.255.254', 'fd7a:115c:a1e0::1', 'fd7a:115c:a1e0:ffff::1']) {
    assert.equal(inTailnetRanges(parseAddress(a)), true, a);
  }
  for (const a of ['100.63.255.255', '100.128.0.1', '10.0.0.1', 'fd7a:115c:a1e1::1', '::1']) {
    assert.equal(inTailnetRanges(parseAddress(a)), false, a);
  }
});

test('daemon flags: the proxies need userspace networking, bad addresses are usage errors', async () => {
  const home = tempIsolatedEnv('trellis-us-flags-');
  try {
    const cases: Array<[string[], RegExp]> = [
      [['--tun', 'trellis0', '--socks5-server', 'localhost:1055'], /--socks5-server needs --tun userspace-networking/],
      [['--outbound-http-proxy-listen', '127.0.0.1:1056'], /--outbound-http-proxy-listen needs --tun userspace/],
      [['--tun', 'userspace-networking', '--socks5-server', 'nowhere:1055'], /must name an IP address or localhost/],
      [['--tun', 'userspace-networking', '--socks5-server', 'localhost'], /must be HOST:PORT/],
      [['--tun', 'userspace-networking', '--socks5-server'], /--socks5-server needs a value/],
    ];
    for (const [args, want] of cases) {
      const r = await run(process.execPath, [TRELLIS, 'daemon', '--state-dir', home.dir, ...args], {
        env: { ...process.env, ...home.env },
        timeout: 30_000,
      }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.match(r.stderr, /usage: trellis daemon/);
    }
  } finally {
    home.remove();
  }
});
