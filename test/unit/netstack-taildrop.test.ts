// Taildrop over two userspace stacks wired back to back (no OS socket at all): the PeerAPI fed by a netstack
// listener (acceptConnection) takes a PUT from sendFile dialing through the other stack, identifies the caller by
// the tailnet address the stack reports, and answers the resume query (the same file again is not stored twice).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { NetStack } from '../../main/engine/netstack/index.ts';
import type { ByteSource } from '../../main/engine/protocol.ts';
import { NetstackPeerApi, withIdleTimeout } from '../../main/engine/services/netstack-peerapi.ts';
import { Inbox } from '../../main/engine/taildrop/inbox.ts';
import { PeerApi } from '../../main/engine/taildrop/peerapi.ts';
import { sendFile } from '../../main/engine/taildrop/send.ts';

const A = '100.64.0.1';
const B = '100.64.0.2';
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function memorySource(data: Uint8Array): ByteSource {
  return { size: data.length, read: async (off, len) => data.slice(off, off + len) };
}

test('Taildrop through the netstack: PeerAPI on a netstack listener, sender dialing through a stack', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-ns-td-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Packets cross on the next turn of the event loop, as they would through WireGuard.
  let a: NetStack | undefined;
  let b: NetStack | undefined;
  a = new NetStack({ addresses: [A], output: (p) => setImmediate(() => b?.deliver(p)) });
  b = new NetStack({ addresses: [B], output: (p) => setImmediate(() => a?.deliver(p)) });
  const callers: string[] = [];
  const api = new PeerApi({
    inbox: new Inbox(dir),
    identify: (ip) => {
      callers.push(ip);
      return ip === A ? { senderId: '7', name: 'a', mayFileSend: true } : undefined;
    },
    fileSharing: () => true,
    log: () => {},
  });
  api.serveWithoutSockets([B]);
  const listeners = new NetstackPeerApi();
  listeners.serve(b, { v4: api.port4, v6: 0 }, (s) => api.acceptConnection(s));
  t.after(() => {
    listeners.close();
    api.close();
    a?.close();
    b?.close();
  });
  const connect = (host: string, port: number) =>
    new Promise<ReturnType<NetStack['connect']>>((resolve, reject) => {
      const s = (a as NetStack).connect(host, port);
      s.once('connect', () => resolve(withIdleTimeout(s)));
      s.once('error', reject);
    });
  const base = `http://${B}:${api.port4}`;
  const data = randomBytes(2 * 1024 * 1024 + 123);
  const r = await sendFile({ base, source: memorySource(data), name: 'over-netstack.bin', connect });
  assert.deepEqual(r, { total: data.length, resumedFrom: 0 });
  assert.equal(sha(await readFile(path.join(dir, 'taildrop', 'over-netstack.bin'))), sha(data));
  assert.ok(callers.length > 0 && callers.every((ip) => ip === A), `callers seen: ${callers.join(', ')}`);
  const again = await sendFile({ base, source: memorySource(data), name: 'over-netstack.bin', connect });
  assert.equal(again.total, data.length);
  assert.deepEqual(await readdir(path.join(dir, 'taildrop')), ['over-netstack.bin']);
});
