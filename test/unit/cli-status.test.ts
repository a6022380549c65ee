// The `trellis status` formatter on synthetic snapshots: columns, online/offline, empty peers, states.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatus, stateHeader } from '../../main/cli/tailnet.ts';
import { DEFAULT_PREFS } from '../../main/engine/core/prefs-store.ts';
import type { PeerSummary, StatusSnapshot } from '../../main/engine/protocol.ts';

const PREFS = { ...DEFAULT_PREFS, advertiseRoutes: [], controlURL: 'http://127.0.0.1:8080', wantRunning: true };

function peer(
  id: number,
  name: string,
  address: string,
  online: boolean | null,
  extra: Partial<PeerSummary> = {},
): PeerSummary {
  return {
    stableID: String(id),
    exitNodeOption: false,
    routes: [],
    id,
    name,
    dnsName: `${name}.tail.example`,
    addresses: [address, `fd7a:115c:a1e0::${id}`],
    online,
    os: 'linux',
    user: 'alice',
    expired: false,
    ...extra,
  };
}

function snapshot(extra: Partial<StatusSnapshot>): StatusSnapshot {
  return { state: 'Running', prefs: PREFS, peers: [], health: [], ...extra };
}

const SELF = {
  id: 1,
  dnsName: 'laptop.tail.example',
  name: 'laptop',
  addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'],
  user: 'alice',
};

test('running: self first, then peers sorted by name, in aligned columns', () => {
  const text = formatStatus(
    snapshot({
      self: SELF,
      peers: [
        peer(3, 'web-server', '100.64.0.30', false, { os: 'windows', user: 'bob@example.com' }),
        peer(2, 'db', '100.64.0.2', true),
        peer(4, 'phone', '100.64.0.4', null, { os: '' }),
      ],
    }),
  );
  assert.equal(
    text,
    [
      '100.64.0.1   laptop      alice            -        -',
      '100.64.0.2   db          alice            linux    online',
      '100.64.0.4   phone       alice            -        -',
      '100.64.0.30  web-server  bob@example.com  windows  offline',
      '',
    ].join('\n'),
  );
});

test('a relayed path shows the region code as tailscale status does; derp-N only without one', () => {
  const via = { via: 'derp' as const, derpRegion: 900, lastHandshake: 0, rxBytes: 0, txBytes: 0 };
  const text = formatStatus(
    snapshot({
      self: SELF,
      peers: [
        peer(2, 'db', '100.64.0.2', true, { path: { ...via, derpRegionCode: 'fra' } }),
        peer(3, 'nas', '100.64.0.3', true, { path: via }),
      ],
    }),
  );
  assert.match(text, /db .* online {2}relay "fra"\n/);
  assert.match(text, /nas .* online {2}relay "derp-900"\n/);
});

test('running with no peers prints only the self line', () => {
  assert.equal(formatStatus(snapshot({ self: SELF })), '100.64.0.1  laptop  alice  -  -\n');
});

test('expired peers, missing names and addresses, control characters', () => {
  const text = formatStatus(
    snapshot({
      self: SELF,
      peers: [
        peer(5, '', '100.64.0.5', false, { dnsName: 'old.tail.example', expired: true }),
        { ...peer(6, 'evil\u001b[31m', '100.64.0.6', null, { expired: true }), addresses: [] },
      ],
    }),
  );
  const lines = text.trimEnd().split('\n');
  assert.match(lines[1], /^-\s+evil\?\[31m\s+alice\s+linux\s+expired$/);
  assert.match(lines[2], /^100\.64\.0\.5\s+old\s+alice\s+linux\s+offline, expired$/);
  assert.ok(!text.includes('\u001b'), 'no escape character reaches the terminal');
});

test('a header line for every state but Running', () => {
  assert.equal(formatStatus(snapshot({ state: 'Stopped' })), 'Stopped.\n');
  assert.equal(formatStatus(snapshot({ state: 'NeedsLogin' })), 'Logged out.\n');
  assert.equal(
    formatStatus(snapshot({ state: 'NeedsLogin', reason: 'node key expired: log in again' })),
    'NeedsLogin: node key expired: log in again\n',
  );
  assert.equal(
    formatStatus(snapshot({ state: 'NeedsLogin', reason: 'waiting', authURL: 'https://hs.example/register/abc' })),
    'NeedsLogin: waiting\nLog in at: https://hs.example/register/abc\n',
  );
  assert.match(formatStatus(snapshot({ state: 'NeedsMachineAuth' })), /^NeedsMachineAuth: waiting for an admin/);
  assert.equal(stateHeader(snapshot({ state: 'Starting' })), 'Starting.');
  assert.equal(stateHeader(snapshot({ state: 'NoState' })), 'The engine has not started.');
  assert.equal(stateHeader(snapshot({ state: 'Running' })), undefined);
  assert.equal(
    formatStatus(snapshot({ state: 'Starting', self: SELF })),
    'Starting.\n100.64.0.1  laptop  alice  -  -\n',
  );
});

test('health warnings follow the table', () => {
  const text = formatStatus(
    snapshot({ self: SELF, health: [{ code: 'control-unreachable', message: 'lost the control server' }] }),
  );
  assert.equal(text, '100.64.0.1  laptop  alice  -  -\n\n# Health check:\n#     - lost the control server\n');
});

test('the AEAD shows only when it is the noble fallback; libsodium is the quiet normal case', () => {
  const quiet = formatStatus(snapshot({ self: SELF, crypto: { aead: 'libsodium' } }));
  assert.equal(quiet, '100.64.0.1  laptop  alice  -  -\n');
  const text = formatStatus(snapshot({ self: SELF, crypto: { aead: 'noble', fallbackReason: 'TRELLIS_AEAD=noble' } }));
  assert.equal(
    text,
    '100.64.0.1  laptop  alice  -  -\n\n# Crypto: ChaCha20-Poly1305 from @noble/ciphers, the slower fallback (TRELLIS_AEAD=noble)\n',
  );
});

test('userspace networking: the mode, both proxy addresses and why, after the table; nothing in TUN mode', () => {
  const text = formatStatus(
    snapshot({
      self: SELF,
      networking: {
        mode: 'userspace',
        socks5: '127.0.0.1:1055',
        httpProxy: '[::1]:1056',
        reason: 'Creating a network device needs root.',
      },
    }),
  );
  assert.equal(
    text,
    [
      '100.64.0.1  laptop  alice  -  -',
      '',
      '# Userspace networking (no network device): apps reach the tailnet through a proxy.',
      '#     SOCKS5 proxy: 127.0.0.1:1055',
      '#     HTTP proxy:   [::1]:1056',
      '#     Why: Creating a network device needs root.',
      '',
    ].join('\n'),
  );
  const bare = formatStatus(
    snapshot({ self: SELF, networking: { mode: 'userspace', socks5: '127.0.0.1:1\u001b[2J' } }),
  );
  assert.match(bare, /SOCKS5 proxy: 127\.0\.0\.1:1\?\[2J\n$/, 'no escape reaches the terminal; no "Why" without one');
  const none = formatStatus(snapshot({ self: SELF, networking: { mode: 'userspace' } }));
  assert.match(none, /# {5}No proxy is running\.\n$/);
  assert.equal(
    formatStatus(snapshot({ self: SELF, networking: { mode: 'tun' } })),
    '100.64.0.1  laptop  alice  -  -\n',
  );
});
