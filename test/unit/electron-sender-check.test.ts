// Which IPC senders and which external links the app accepts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { isSafeExternalUrl, isTrustedSender } from '../../main/electron/sender-check.ts';

const OURS = pathToFileURL('/opt/Trellis/resources/app.asar/renderer/dist/index.html').href;
const top = (url: string) => ({ url, isMainFrame: true });

test('our top frame at our page is trusted, with or without query and hash', () => {
  assert.equal(isTrustedSender(top(OURS), OURS), true);
  assert.equal(isTrustedSender(top(`${OURS}#/peers`), OURS), true);
  assert.equal(isTrustedSender(top(`${OURS}?view=settings#x`), OURS), true);
});

test('other pages, schemes and frames are refused', () => {
  const refused = [
    pathToFileURL('/opt/Trellis/resources/app.asar/renderer/dist/other.html').href,
    pathToFileURL('/tmp/index.html').href,
    pathToFileURL('/opt/Trellis/resources/app.asar/renderer/dist/index.html.evil').href,
    'file://attacker/opt/Trellis/resources/app.asar/renderer/dist/index.html',
    'https://example.com/renderer/dist/index.html',
    'http://localhost:5173/',
    'devtools://devtools/bundled/inspector.html',
    'about:blank',
    'data:text/html,<script>1</script>',
    '',
    'not a url',
  ];
  for (const url of refused) assert.equal(isTrustedSender(top(url), OURS), false, url);
  assert.equal(isTrustedSender({ url: OURS, isMainFrame: false }, OURS), false, 'sub-frame');
  assert.equal(isTrustedSender(null, OURS), false, 'frame gone');
  assert.equal(isTrustedSender(undefined, OURS), false, 'no frame');
});

test('a bad renderer URL trusts nobody', () => {
  assert.equal(isTrustedSender(top(OURS), 'garbage'), false);
  assert.equal(isTrustedSender(top('https://a.example/'), 'https://a.example/'), false, 'only file: pages');
});

test('only http(s) URLs with a host open in the browser', () => {
  for (const ok of [
    'https://login.tailscale.com/a/abc',
    'http://headscale.lan:8080/register/x',
    'HTTPS://Example.COM',
  ]) {
    assert.equal(isSafeExternalUrl(ok), true, ok);
  }
  for (const bad of [
    'javascript:alert(1)',
    'file:///etc/passwd',
    'data:text/html,hi',
    'trellis://open',
    'ms-settings:network',
    'smb://host/share',
    'https://',
    'http://',
    '//example.com',
    'example.com',
    '',
  ]) {
    assert.equal(isSafeExternalUrl(bad), false, bad);
  }
});
