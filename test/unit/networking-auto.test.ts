// networking 'auto' against the real TUN device: without the privilege for it (run as uid 65534 with no
// capability when the test runs as root) the data path takes the netstack and says why; 'tun' fails as before.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PORT = fileURLToPath(new URL('../../main/engine/datapath/packet-port.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// node --import tsx -e <src> <module>: each mode's outcome as JSON
const PROBE = `
const { openTunFor } = await import(process.argv[1]);
const out = {};
for (const mode of ['auto', 'tun', 'userspace']) {
  try {
    const c = openTunFor(mode, 'trlauto0');
    if ('tun' in c) { c.tun.close(); out[mode] = 'tun'; } else out[mode] = { userspace: true, reason: c.reason ?? null };
  } catch (e) { out[mode] = { error: e.name, kind: e.kind }; }
}
console.log(JSON.stringify(out));`;

test("networking 'auto' falls back to the netstack when the TUN needs a privilege we lack", async (t) => {
  if (!existsSync('/dev/net/tun')) {
    if (process.env.CI === 'true') throw new Error('this test needs /dev/net/tun');
    t.skip('no /dev/net/tun');
    return;
  }
  const asRoot = process.getuid?.() === 0;
  const drop = asRoot
    ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all']
    : [];
  const [cmd, ...args] = [...drop, process.execPath, '--import', 'tsx', '--input-type=module', '-e', PROBE, PORT];
  const { stdout } = await run(cmd ?? process.execPath, args, { cwd: ROOT, timeout: 30_000 });
  const out = JSON.parse(stdout) as Record<string, unknown>;
  assert.deepEqual(out.tun, { error: 'TunOpenError', kind: 'privilege' });
  assert.deepEqual(out.userspace, { userspace: true, reason: null });
  const auto = out.auto as { userspace: boolean; reason: string };
  assert.equal(auto.userspace, true);
  assert.match(auto.reason, /needs root or CAP_NET_ADMIN/);
});
