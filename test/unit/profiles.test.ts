// Accounts on disk: a flat state dir from before profiles becomes the first profile with its keys intact; profile
// dirs 0700 and files 0600; the index survives a restart, is rebuilt when lost or garbled; the engine's account
// commands add, switch, find by name and remove, and hostile names get typed errors.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { adminURLOf, findProfile, ProfileStore } from '../../main/engine/core/profiles.ts';
import { createEngine } from '../../main/engine/engine.ts';
import { EngineError, type EngineEvent, type ProfileInfo } from '../../main/engine/protocol.ts';

const KEY = (c: string) => `privkey:${c.repeat(64)}`;

async function tempDir(t: { after: (f: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-profiles-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const mode = async (p: string) => (await stat(p)).mode & 0o777;

test('a flat state dir migrates into the first profile without losing its keys or login', async (t) => {
  const dir = await tempDir(t);
  const keys = `${JSON.stringify({ machine: KEY('a'), node: KEY('b') })}\n`;
  const prefs = { prefs: { controlURL: 'http://127.0.0.1:1', hostname: 'old', wantRunning: false }, loggedIn: true };
  await writeFile(path.join(dir, 'keys.json'), keys, { mode: 0o600 });
  await writeFile(path.join(dir, 'prefs.json'), JSON.stringify({ ...prefs, loginName: 'alice' }), { mode: 0o600 });
  await mkdir(path.join(dir, 'taildrop'));

  const store = await ProfileStore.open(dir);
  assert.equal(store.ids().length, 1);
  const profileDir = store.dirOf(store.current);
  assert.equal(await readFile(path.join(profileDir, 'keys.json'), 'utf8'), keys, 'the same keys, byte for byte');
  assert.deepEqual((await readdir(dir)).sort(), ['profiles', 'profiles.json', 'taildrop']);
  assert.equal(await mode(profileDir), 0o700);
  assert.equal(await mode(path.join(profileDir, 'keys.json')), 0o600);
  assert.equal(await mode(path.join(dir, 'profiles.json')), 0o600);

  // The engine on it: still logged in (Stopped, as wantRunning is false), same account, not a new node.
  const engine = createEngine();
  t.after(() => engine.close());
  const st = await engine.handle('start', { stateDir: dir });
  assert.equal(st.state, 'Stopped');
  assert.equal(st.prefs.hostname, 'old');
  assert.equal(st.profile?.loginName, 'alice');
  assert.equal(st.profile?.id, store.current);
  assert.equal(await readFile(path.join(profileDir, 'keys.json'), 'utf8'), keys);
});

test('a migration cut short is finished on the next start; nothing at the top is ever deleted', async (t) => {
  const dir = await tempDir(t);
  // keys.json was moved into the profile, then the process died before prefs.json and the index.
  await mkdir(path.join(dir, 'profiles', 'beef'), { recursive: true, mode: 0o700 });
  const keys = JSON.stringify({ machine: KEY('c'), node: KEY('d') });
  await writeFile(path.join(dir, 'profiles', 'beef', 'keys.json'), keys, { mode: 0o600 });
  await writeFile(path.join(dir, 'prefs.json'), JSON.stringify({ prefs: { hostname: 'h' }, loggedIn: true }));
  const store = await ProfileStore.open(dir);
  assert.deepEqual(store.ids(), ['beef']);
  assert.equal(await readFile(path.join(dir, 'profiles', 'beef', 'keys.json'), 'utf8'), keys);
  const prefs = JSON.parse(await readFile(path.join(dir, 'profiles', 'beef', 'prefs.json'), 'utf8'));
  assert.equal(prefs.prefs.hostname, 'h');
});

test('the index: the active profile survives a reopen; a garbled index is rebuilt from the dirs', async (t) => {
  const dir = await tempDir(t);
  const store = await ProfileStore.open(dir);
  const first = store.current;
  const second = await store.create();
  assert.notEqual(first, second);
  await store.setCurrent(second);
  assert.equal((await ProfileStore.open(dir)).current, second, 'reopened: the second is still active');
  await writeFile(path.join(dir, 'profiles.json'), '{"current": 7, "ids": "../../etc"}');
  const rebuilt = await ProfileStore.open(dir);
  assert.deepEqual(rebuilt.ids(), [first, second].sort());
  assert.throws(() => rebuilt.dirOf('../x'), EngineError);
  await assert.rejects(rebuilt.setCurrent('ffff'), EngineError);
  await assert.rejects(rebuilt.remove(rebuilt.current), EngineError, 'the active one is not removed in place');
});

test('engine: add, list, switch by id and by name, remove; the index follows', async (t) => {
  const dir = await tempDir(t);
  const engine = createEngine();
  t.after(() => engine.close());
  const events: EngineEvent[] = [];
  engine.onEvent((e) => events.push(e));
  const st = await engine.handle('start', { stateDir: dir });
  const first = st.profile?.id as string;
  assert.match(first, /^[0-9a-f]{4}$/);

  // The first account never logged in: adding reuses it rather than leaving an empty one behind.
  const reused = await engine.handle('addProfile', { controlURL: 'http://one.example:8080/' });
  assert.equal(reused.profile?.id, first);
  assert.equal(reused.prefs.controlURL, 'http://one.example:8080');
  assert.equal((await engine.handle('listProfiles', {})).profiles.length, 1);

  await assert.rejects(engine.handle('addProfile', { controlURL: 'ftp://x' }), /http:\/\/ or https:\/\//);
  await assert.rejects(engine.handle('switchProfile', { profile: '' }), EngineError);
  await assert.rejects(engine.handle('switchProfile', { profile: 'nobody' }), /no account "nobody"/);
  await assert.rejects(engine.handle('removeProfile', { profile: 42 as unknown as string }), EngineError);

  // A profile with a login is kept; a second one is made for the next server.
  await writeFile(
    path.join(dir, 'profiles', first, 'prefs.json'),
    JSON.stringify({ prefs: { controlURL: 'http://one.example:8080' }, loggedIn: false, loginName: 'alice' }),
  );
  await engine.handle('switchProfile', { profile: first }); // already active: nothing to do
  const restarted = createEngine();
  t.after(() => restarted.close());
  await engine.close();
  await restarted.handle('start', { stateDir: dir });
  const added = await restarted.handle('addProfile', { controlURL: 'https://controlplane.tailscale.com' });
  const second = added.profile?.id as string;
  assert.notEqual(second, first);
  assert.equal(added.state, 'NeedsLogin');
  assert.equal(added.profile?.adminURL, 'https://login.tailscale.com/admin/machines');
  // A configured admin console wins; '' goes back to the derived one; anything but http(s) is refused.
  await restarted.handle('setPrefs', { adminURL: 'https://admin.example/' });
  assert.equal((await restarted.handle('status', {})).profile?.adminURL, 'https://admin.example');
  await assert.rejects(restarted.handle('setPrefs', { adminURL: 'javascript:alert(1)' }), EngineError);
  await restarted.handle('setPrefs', { adminURL: '' });
  assert.equal((await restarted.handle('status', {})).profile?.adminURL, 'https://login.tailscale.com/admin/machines');

  const list = await restarted.handle('listProfiles', {});
  assert.equal(list.current, second);
  assert.deepEqual(
    list.profiles.map((p) => [p.id, p.controlURL, p.loginName]),
    [
      [first, 'http://one.example:8080', 'alice'],
      [second, 'https://controlplane.tailscale.com', ''],
    ],
  );
  const back = await restarted.handle('switchProfile', { profile: 'alice' });
  assert.equal(back.profile?.id, first);
  assert.equal(back.prefs.controlURL, 'http://one.example:8080');
  const index = JSON.parse(await readFile(path.join(dir, 'profiles.json'), 'utf8'));
  assert.equal(index.current, first);
  // Switches at once run one after another: the last one asked for is the one in use, on disk as well.
  const racing = [second, first, second].map((profile) => restarted.handle('switchProfile', { profile }));
  await Promise.all(racing);
  assert.equal((await restarted.handle('status', {})).profile?.id, second);
  assert.equal(JSON.parse(await readFile(path.join(dir, 'profiles.json'), 'utf8')).current, second);
  await restarted.handle('switchProfile', { profile: first });

  const after = await restarted.handle('removeProfile', { profile: second });
  assert.deepEqual(
    after.profiles.map((p) => p.id),
    [first],
  );
  assert.deepEqual(await readdir(path.join(dir, 'profiles')), [first], 'its keys are gone from disk');

  // Removing the last one leaves a fresh, empty account active.
  const last = await restarted.handle('removeProfile', { profile: first });
  assert.equal(last.profiles.length, 1);
  assert.notEqual(last.current, first);
  assert.equal(last.profiles[0]?.controlURL, '');
  assert.ok(
    events.some((e) => e.event === 'profiles'),
    'listeners hear of account changes',
  );
});

test('findProfile and adminURLOf', () => {
  const p = (id: string, loginName: string, tailnet: string): ProfileInfo => ({
    id,
    controlURL: '',
    loginName,
    tailnet,
    loggedIn: true,
  });
  const all = [p('aaaa', 'alice', 'one.test'), p('bbbb', 'alice', 'two.test'), p('cccc', 'bob', 'two.test')];
  assert.equal(findProfile(all, 'cccc').id, 'cccc');
  assert.equal(findProfile(all, 'bob').id, 'cccc');
  assert.equal(findProfile(all, 'one.test').id, 'aaaa');
  assert.throws(() => findProfile(all, 'alice'), /several accounts/);
  assert.equal(adminURLOf('https://headscale.example', undefined), undefined);
  assert.equal(adminURLOf('https://headscale.example', 'https://admin.example/'), 'https://admin.example/');
  assert.equal(adminURLOf('https://login.tailscale.com', undefined), 'https://login.tailscale.com/admin/machines');
});
