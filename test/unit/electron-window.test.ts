// The main window's security settings, read from the options module main.ts builds the window with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { windowOptions } from '../../main/electron/window-options.ts';

test('the window renderer is sandboxed, isolated and has no Node', () => {
  const web = windowOptions('/app/dist/preload/index.cjs').webPreferences;
  assert.ok(web);
  assert.equal(web.preload, '/app/dist/preload/index.cjs');
  assert.equal(web.sandbox, true);
  assert.equal(web.contextIsolation, true);
  assert.equal(web.nodeIntegration, false);
  assert.equal(web.nodeIntegrationInWorker, false);
  assert.equal(web.nodeIntegrationInSubFrames, false);
  assert.equal(web.webSecurity, true);
  assert.equal(web.allowRunningInsecureContent, false);
  assert.equal(web.webviewTag, false);
  assert.equal(web.spellcheck, false);
});

test('the window starts hidden with a usable minimum size', () => {
  const o = windowOptions('/p.cjs');
  assert.equal(o.show, false);
  assert.equal(o.title, 'Trellis');
  assert.ok((o.minWidth ?? 0) >= 480 && (o.minHeight ?? 0) >= 360);
  assert.ok((o.width ?? 0) >= (o.minWidth ?? 0) && (o.height ?? 0) >= (o.minHeight ?? 0));
});
