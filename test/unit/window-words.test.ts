// What the window says, as pure functions: a failed login as one sentence for the field at fault, a device's
// state in words and whether it can receive files, the list's order, this device's key expiry, the admin console.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loginError } from '../../main/controller/login-errors.ts';
import { validatePrefs } from '../../main/controller/views.ts';
import { EngineError } from '../../main/engine/protocol.ts';
import { ApiError, type PeerView } from '../../preload/api.ts';
import { keyExpiry } from '../../renderer/src/lib/key-expiry.ts';
import { passesFilters, sortPeers } from '../../renderer/src/lib/peer-filter.ts';
import { peerStatus } from '../../renderer/src/lib/peer-status.ts';

const HS = 'https://hs.example.com:8443';

test('a failed login names the field at fault in one sentence and keeps the raw error as detail', () => {
  const unreachable = loginError(
    new EngineError(
      'control-unreachable',
      'login failed: cannot reach control server https://hs.example.com:8443: fetch failed',
    ),
    HS,
  );
  assert.equal(unreachable?.field, 'controlURL');
  assert.match(unreachable?.message ?? '', /^Trellis could not reach hs\.example\.com:8443 /);
  assert.match(unreachable?.detail ?? '', /fetch failed/);

  const key = loginError(
    new EngineError('auth-key-invalid', 'control server refused the auth key: failed to parse auth-key: key too short'),
    HS,
  );
  assert.equal(key?.field, 'authKey');
  assert.doesNotMatch(key?.message ?? '', /parse|too short/, 'no server jargon in the sentence');
  assert.match(key?.detail ?? '', /key too short/);

  assert.equal(loginError(new EngineError('control-protocol', 'x'), HS)?.field, 'controlURL');
  assert.equal(loginError(new EngineError('login-failed', 'x'), HS)?.field, undefined);
  assert.equal(loginError(new Error('not an engine error'), HS), undefined);
  for (const e of [unreachable, key]) {
    const body = e?.toBody();
    assert.deepEqual(body && { field: body.field, detail: body.detail }, { field: e?.field, detail: e?.detail });
  }
});

const peer = (name: string, o: Partial<PeerView> = {}): PeerView => ({
  id: name.length,
  name,
  dnsName: `${name}.ts.net`,
  addresses: ['100.64.0.9'],
  os: 'linux',
  user: 'u',
  online: true,
  expired: false,
  fileTarget: true,
  stableID: `n${name}`,
  exitNodeOption: false,
  routes: [],
  ...o,
});

test('a bad preference names its field in a sentence', () => {
  for (const [prefs, field] of [
    [{ hostname: 'bad name!' }, 'hostname'],
    [{ autoSaveDir: 'relative/dir' }, 'autoSaveDir'],
  ] as const) {
    assert.throws(
      () => validatePrefs(prefs),
      (e) => e instanceof ApiError && e.field === field && /^[A-Z].*\.$/.test(e.message),
    );
  }
});

test('a device state in words; expired, offline and unseen devices cannot receive files', () => {
  assert.deepEqual(peerStatus(peer('a'), true), { tone: 'ok', word: 'Online', canReceive: true, why: undefined });
  const expired = peerStatus(peer('a', { expired: true }), true);
  assert.equal(expired.word, 'Key expired');
  assert.equal(expired.canReceive, false);
  const offline = peerStatus(peer('a', { online: false }), true);
  assert.equal(offline.word, 'Offline');
  assert.equal(offline.canReceive, false);
  const stale = peerStatus(peer('a'), false);
  assert.equal(stale.word, 'Unknown', 'disconnected: the last known state is not shown as current');
  assert.equal(stale.canReceive, false);
  assert.equal(peerStatus(peer('a', { fileTarget: false }), true).canReceive, false);
  assert.equal(passesFilters(peer('a', { expired: true }), { online: false, canReceive: true }), false);
  assert.equal(passesFilters(peer('a', { online: false }), { online: true, canReceive: false }), false);
});

test('the list: online first, numbers in names in numeric order', () => {
  const names = ['node-178', 'node-18', 'node-2', 'Alpha', 'beta', 'node-100'];
  const sorted = sortPeers([...names.map((n) => peer(n)), peer('node-1', { online: false })]).map((p) => p.name);
  assert.deepEqual(sorted, ['Alpha', 'beta', 'node-2', 'node-18', 'node-100', 'node-178', 'node-1']);
});

test("this device's key expiry: urgent within two weeks, expired said so, none for no expiry", () => {
  const now = Date.parse('2026-01-10T12:00:00Z');
  assert.equal(keyExpiry(undefined, now), undefined);
  assert.equal(keyExpiry('0001-01-01T00:00:00Z', now), undefined);
  assert.deepEqual(keyExpiry('2026-04-10T12:00:00Z', now), {
    text: 'Key expires in 90 days',
    urgent: false,
    expired: false,
  });
  assert.equal(keyExpiry('2026-01-13T12:00:00Z', now)?.urgent, true);
  assert.equal(keyExpiry('2026-01-10T18:00:00Z', now)?.text, 'Key expires in 6 h');
  const gone = keyExpiry('2026-01-09T12:00:00Z', now);
  assert.equal(gone?.expired, true);
  assert.match(gone?.text ?? '', /^Key expired /);
});
