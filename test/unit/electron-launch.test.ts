// Command lines the app is launched with (files to send, --hidden) and the Linux autostart entry.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  AUTOSTART_FILE_NAME,
  applyLinuxAutostart,
  autostartDir,
  autostartEntry,
  quoteExecArg,
} from '../../main/electron/autostart-linux.ts';
import { parseLaunchArgs } from '../../main/electron/launch-args.ts';

const dir = mkdtempSync(join(tmpdir(), 'trellis-launch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const fileA = join(dir, 'a.txt');
writeFileSync(fileA, 'a');
writeFileSync(join(dir, 'b c.txt'), 'b');
mkdirSync(join(dir, 'folder'));

test('existing regular files become files to send; switches, folders and missing paths do not', () => {
  const argv = ['/opt/Trellis/trellis', fileA, '--hidden', join(dir, 'folder'), join(dir, 'gone.txt'), '-x', fileA];
  assert.deepEqual(parseLaunchArgs(argv, 1, '/'), { hidden: true, files: [fileA] });
});

test('relative paths are taken from the launch directory, and the skipped entries are never files', () => {
  const argv = ['/usr/bin/electron', fileA, 'b c.txt', '--no-sandbox'];
  assert.deepEqual(parseLaunchArgs(argv, 2, dir), { hidden: false, files: [join(dir, 'b c.txt')] });
  assert.deepEqual(parseLaunchArgs([fileA], 1, dir).files, []);
});

test('Exec arguments are quoted and escaped by the Desktop Entry rules', () => {
  assert.equal(quoteExecArg('/opt/Trellis/trellis'), '/opt/Trellis/trellis');
  assert.equal(quoteExecArg('/home/u/My Apps/Trellis.AppImage'), '"/home/u/My Apps/Trellis.AppImage"');
  assert.equal(quoteExecArg('100%'), '100%%');
  assert.equal(quoteExecArg('a"b$c'), '"a\\\\"b\\\\$c"');
  assert.equal(quoteExecArg(''), '""');
});

test('the autostart entry runs the command, with --hidden when asked', () => {
  const entry = autostartEntry(['/opt/Trellis/trellis'], true);
  assert.match(entry, /^\[Desktop Entry\]\n/);
  assert.match(entry, /\nExec=\/opt\/Trellis\/trellis --hidden\n/);
  assert.match(entry, /\nType=Application\n/);
  assert.doesNotMatch(autostartEntry(['/opt/Trellis/trellis'], false), /--hidden/);
});

test('autostart writes and removes trellis.desktop in the XDG autostart folder', () => {
  assert.equal(autostartDir({ XDG_CONFIG_HOME: '/x/cfg' }, '/home/u'), '/x/cfg/autostart');
  assert.equal(autostartDir({ XDG_CONFIG_HOME: 'relative' }, '/home/u'), '/home/u/.config/autostart');
  assert.equal(autostartDir({}, '/home/u'), '/home/u/.config/autostart');
  const auto = join(dir, 'autostart');
  applyLinuxAutostart(true, false, ['/opt/Trellis/trellis'], auto);
  assert.match(readFileSync(join(auto, AUTOSTART_FILE_NAME), 'utf8'), /\nExec=\/opt\/Trellis\/trellis\n/);
  applyLinuxAutostart(false, false, ['/opt/Trellis/trellis'], auto);
  assert.equal(existsSync(join(auto, AUTOSTART_FILE_NAME)), false);
  applyLinuxAutostart(false, false, ['/opt/Trellis/trellis'], auto); // removing twice is fine
});
