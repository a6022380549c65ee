// The wg-quick parser: every field the issue lists, several peers, and errors that name line and reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress } from '../../main/engine/packet/ip.ts';
import { ConfigError, parseWgQuick } from '../../main/engine/wg/config-file.ts';

const K1 = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const K2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const K3 = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';

const GOOD = `# a comment
[Interface]
PrivateKey = ${K1}
Address = 203.0.113.1/24, 2001:db8:100::1/64
ListenPort = 51820
MTU = 1380
DNS = 198.51.100.53

[Peer]
PublicKey = ${K2}
PresharedKey = ${K3}
AllowedIPs = 203.0.113.2/32, 2001:db8:100::2/128
Endpoint = 192.0.2.2:51820
PersistentKeepalive = 25

[peer]
publickey = ${K3}
allowedips = 198.51.100.0/24
endpoint = [2001:db8::9]:443   # trailing comment
`;

test('parses every supported field, several peers, case-insensitive keys', () => {
  const c = parseWgQuick(GOOD);
  assert.equal(Buffer.from(c.privateKey).toString('base64'), K1);
  assert.deepEqual(
    c.addresses.map((a) => a.text),
    ['203.0.113.1/24', '2001:db8:100::1/64'],
  );
  assert.equal(c.listenPort, 51820);
  assert.equal(c.mtu, 1380);
  assert.equal(c.peers.length, 2);
  const [p1, p2] = c.peers;
  assert.equal(Buffer.from(p1.presharedKey ?? []).toString('base64'), K3);
  assert.deepEqual(p1.endpoint, { host: '192.0.2.2', port: 51820 });
  assert.equal(p1.persistentKeepalive, 25);
  assert.deepEqual(
    p1.allowedIPs.map((a) => `${formatAddress(a.address)}/${a.bits}`),
    ['203.0.113.2/32', '2001:db8:100::2/128'],
  );
  assert.deepEqual(p2.endpoint, { host: '2001:db8::9', port: 443 });
  assert.equal(p2.presharedKey, undefined);
});

test('host bits of AllowedIPs are cleared', () => {
  const c = parseWgQuick(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nAllowedIPs = 198.51.100.77/24\n`);
  assert.equal(formatAddress(c.peers[0].allowedIPs[0].address), '198.51.100.0');
});

test('errors name the line and the reason', () => {
  const cases: Array<[string, number, RegExp]> = [
    [`[Interface]\nPrivateKey = nope\n`, 2, /PrivateKey.*base64/],
    [`[Interface]\nPrivateKey = ${K1}\nListenPort = 70000\n`, 3, /ListenPort.*between/],
    [`[Interface]\nPrivateKey = ${K1}\nAddress = 203.0.113.1/33\n`, 3, /prefix length/],
    [`[Interface]\nPrivateKey = ${K1}\nAddress = banana\n`, 3, /not an IP address/],
    [`[Interface]\nPrivateKey = ${K1}\n[Peer]\nAllowedIPs = 203.0.113.2/32\n`, 3, /no PublicKey/],
    [`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nEndpoint = 192.0.2.1\n`, 5, /host:port/],
    [`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nColour = blue\n`, 5, /unknown \[Peer\] key/],
    [`[Interface]\nPrivateKey = ${K1}\nthis is not a setting\n`, 3, /Key = Value/],
    [`PrivateKey = ${K1}\n`, 1, /outside/],
    [`[Interface]\nPrivateKey = ${K1}\n[Wat]\n`, 3, /unknown section/],
    [`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\n[Peer]\nPublicKey = ${K2}\n`, 5, /same PublicKey/],
    [`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nPersistentKeepalive = -1\n`, 5, /number/],
  ];
  for (const [text, line, reason] of cases) {
    assert.throws(
      () => parseWgQuick(text),
      (e: unknown) => e instanceof ConfigError && e.line === line && reason.test(e.reason),
      `expected line ${line} ${reason} for ${JSON.stringify(text)}`,
    );
  }
  assert.throws(
    () => parseWgQuick(''),
    (e: unknown) => e instanceof ConfigError && /no \[Interface\]/.test(e.message),
  );
  assert.throws(() => parseWgQuick('[Interface]\n'), /no PrivateKey/);
});
