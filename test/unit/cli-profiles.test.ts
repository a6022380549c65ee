// `trellis switch --list` on synthetic account lists: columns, the account in use marked, accounts logged out said
// so, and names from a hostile server kept off the terminal's control codes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatProfiles } from '../../main/cli/profiles.ts';
import type { ProfileList } from '../../main/engine/protocol.ts';

test('switch --list: id, tailnet, account (in use marked *), server', () => {
  const list: ProfileList = {
    current: 'b2c3',
    profiles: [
      { id: 'a1b2', controlURL: 'https://hs.work.example', loginName: 'alice', tailnet: 'work.test', loggedIn: true },
      { id: 'b2c3', controlURL: 'http://10.0.0.5:8080', loginName: 'bob', tailnet: 'home.test', loggedIn: true },
      { id: 'c3d4', controlURL: '', loginName: '', tailnet: '', loggedIn: false },
      { id: 'd4e5', controlURL: 'https://x.example', loginName: 'carol', tailnet: '', loggedIn: false },
    ],
  };
  assert.deepEqual(formatProfiles(list).split('\n'), [
    'ID    Tailnet    Account             Server',
    'a1b2  work.test  alice               https://hs.work.example',
    'b2c3  home.test  bob *               http://10.0.0.5:8080',
    'c3d4  -          -                   -',
    'd4e5  -          carol (logged out)  https://x.example',
    '',
  ]);
});

test('switch --list: control codes in server-given names are shown as ?', () => {
  const out = formatProfiles({
    current: 'a1b2',
    profiles: [
      { id: 'a1b2', controlURL: 'https://x', loginName: 'ev\u001b[2Jil', tailnet: 't\u0007n', loggedIn: true },
    ],
  });
  assert.ok(![...out].some((c) => c.charCodeAt(0) < 32 && c !== '\n'), 'no control characters but newlines');
  assert.match(out, /ev\?\[2Jil \*/);
});
