// `trellis up --auth-key`: file:PATH and - (stdin) keep the key off the command line, where `ps` shows it to
// every user; a literal key still works. Each mistake gets its own sentence.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readAuthKey, UP_HELP } from '../../main/cli/tailnet.ts';

const TRELLIS = fileURLToPath(new URL('../../main/cli/trellis.mjs', import.meta.url));
const KEY = 'hskey-auth-Xy3_9aBcDeFgHiJkLmNoPqRsTuVwXyZ0';
const dir = mkdtempSync(join(tmpdir(), 'trellis-auth-key-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const stdin = (...chunks: string[]) => Readable.from(chunks.map((c) => Buffer.from(c)));

test('file:PATH reads the key from the file, trimmed', async () => {
  const path = join(dir, 'hs.key');
  writeFileSync(path, `  ${KEY}\n\n`, { mode: 0o600 });
  assert.equal(await readAuthKey(`file:${path}`, stdin('not this')), KEY);
});

test('- reads the key from standard input, trimmed, in however many chunks it comes', async () => {
  assert.equal(await readAuthKey('-', stdin(KEY.slice(0, 10), KEY.slice(10), '\r\n')), KEY);
});

test('a literal key still works', async () => {
  assert.equal(await readAuthKey(KEY, stdin()), KEY);
});

test('an unreadable file, an empty source or junk each get a sentence', async () => {
  await assert.rejects(
    readAuthKey(`file:${join(dir, 'missing')}`),
    /^Error: cannot read the auth key from .*missing: ENOENT$/,
  );
  await assert.rejects(readAuthKey('file:'), /--auth-key file: needs a path/);
  writeFileSync(join(dir, 'empty.key'), ' \n');
  await assert.rejects(readAuthKey(`file:${join(dir, 'empty.key')}`), /no auth key in .*empty\.key$/);
  await assert.rejects(readAuthKey('-', stdin()), /no auth key in standard input$/);
  await assert.rejects(readAuthKey('-', stdin(`${KEY}\n${KEY}\n`)), /standard input holds more than one word/);
  await assert.rejects(readAuthKey('-', stdin('x'.repeat(5000))), /standard input holds over 4096 bytes/);
});

test('trellis up --help documents both ways', async () => {
  assert.match(UP_HELP, /--auth-key file:PATH +log in with the pre-auth key in this file/);
  assert.match(UP_HELP, /--auth-key - +log in with the key read from standard input/);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [TRELLIS, 'up', '--help'], { timeout: 30_000 }, (e, stdout) =>
      e ? reject(e) : resolve(stdout),
    ),
  );
  assert.equal(out, UP_HELP);
});
