// The PeerAPI takes files from tailnet peers only (issue 12, finding 3): a connection from the node's own address
// comes from some process on this machine — any local user — and is cut without an HTTP answer, while the same
// request from a peer's address (another loopback address here) is served. The real Taildrop service and netmap.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { NetMap } from '../../main/engine/control/netmap.ts';
import { FILE_SHARING_CAP, Taildrop } from '../../main/engine/taildrop/service.ts';

/** PUT from localAddress: the status code, or 'reset' when the connection was cut without an answer. */
function put(port: number, localAddress: string, name: string): Promise<number | 'reset'> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        localAddress,
        path: `/v0/put/${name}`,
        method: 'PUT',
        headers: { host: 'peer', 'content-length': 5 },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve('reset'));
    req.end('hello');
  });
}

test('the PeerAPI refuses the node itself as a caller and serves a peer of the same user', async (t) => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-td-self-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const nm = new NetMap();
  nm.apply({
    Node: {
      ID: 1,
      StableID: 'self1',
      Name: 'me.tailnet.test.',
      User: 7,
      Addresses: ['127.0.0.1/32'],
      CapMap: { [FILE_SHARING_CAP]: null },
    },
    Peers: [{ ID: 2, StableID: 'peer2', Name: 'laptop.tailnet.test.', User: 7, Addresses: ['127.0.0.2/32'] }],
  } as Parameters<NetMap['apply']>[0]);
  const td = new Taildrop(stateDir, { log: () => {}, onReceived: () => {} });
  td.setNetMap(nm);
  await td.listen(['127.0.0.1/32']);
  t.after(() => td.close());
  const port = td.ports().v4;
  assert.ok(port > 0, 'the PeerAPI listens');
  const inbox = path.join(stateDir, 'taildrop');

  assert.equal(await put(port, '127.0.0.1', 'planted.txt'), 'reset', 'our own address gets no HTTP at all');
  assert.deepEqual(await readdir(inbox), [], 'nothing landed in the inbox');
  assert.equal(await put(port, '127.0.0.2', 'fine.txt'), 200, 'a peer of the same user is served');
  assert.deepEqual(await readdir(inbox), ['fine.txt']);
  assert.equal(await put(port, '127.0.0.3', 'stranger.txt'), 'reset', 'an address no node holds gets nothing');
});
