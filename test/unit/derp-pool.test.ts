// The DERP pool against fake DERP servers on loopback (a server that turns hostile, a second region dialled on
// demand), and netcheck's pure parts: DERP map → regions, home-region choice with hysteresis.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DerpNode } from '../../main/engine/derp/dial.ts';
import * as F from '../../main/engine/derp/frames.ts';
import { DerpPool } from '../../main/engine/magicsock/derp-pool.ts';
import { choosePreferred, netcheckRegions } from '../../main/engine/magicsock/netcheck.ts';
import { generateKeyPair } from '../../main/engine/wg/crypto.ts';
import { withServer } from './fake-derp.ts';

const node = (port: number): DerpNode => ({ HostName: '127.0.0.1', IPv4: '127.0.0.1', DERPPort: port });
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function until(what: string, ms: number, pred: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('DerpPool', () => {
  test('a home server that sends a malformed frame: counted, redialled, packets flow on the new connection', async () => {
    let conns = 0;
    const peer = generateKeyPair().publicKey;
    await withServer(
      async (c) => {
        const n = ++conns;
        await c.accept();
        // first connection: a RecvPacket header claiming 2 MiB (over the 1 MiB frame limit)
        if (n === 1) c.sock.write(Uint8Array.of(F.FrameType.RecvPacket, 0x00, 0x20, 0x00, 0x00));
        else c.sock.write(F.buildRecvPacket(peer, enc('hello again')));
      },
      async (port) => {
        const got: string[] = [];
        const logs: string[] = [];
        const pool = new DerpPool({
          privateKey: generateKeyPair().privateKey,
          useTLS: false,
          log: (m) => logs.push(m),
          onPacket: (region, src, pkt) => got.push(`${region} ${Buffer.from(src).equals(peer)} ${dec(pkt)}`),
        });
        try {
          pool.setRegions(new Map([[7, [node(port)]]]));
          pool.setHome(7);
          await until('a packet on the second connection', 5_000, () => got.length > 0);
          assert.deepEqual(got, ['7 true hello again']);
          assert.equal(pool.counters.protocolErrors, 1, logs.join('\n'));
          assert.equal(pool.counters.connects, 2);
          assert.equal(conns, 2);
          assert.ok(
            logs.some((l) => /region 7 lost: bad frame/.test(l)),
            logs.join('\n'),
          );
        } finally {
          pool.close();
        }
      },
    );
  });

  test("a peer's region is dialled on demand; packets sent while it connects are delivered", async () => {
    const dst = generateKeyPair().publicKey;
    const received: string[] = [];
    await withServer(
      (c) => void c.accept(),
      (homePort) =>
        withServer(
          async (c) => {
            await c.accept();
            for (let i = 0; i < 3; i++) {
              const f = await c.frame();
              if (f.type === 'sendPacket' && Buffer.from(f.dst).equals(dst)) received.push(dec(f.packet));
              else i--;
            }
          },
          async (otherPort) => {
            const pool = new DerpPool({
              privateKey: generateKeyPair().privateKey,
              useTLS: false,
              log: () => {},
              onPacket: () => {},
            });
            try {
              pool.setRegions(
                new Map([
                  [1, [node(homePort)]],
                  [2, [node(otherPort)]],
                ]),
              );
              pool.setHome(1);
              await until('home connected', 3_000, () => pool.isUp(1));
              const buf = enc('one');
              assert.equal(pool.send(2, dst, buf), false, 'region 2 is not connected yet: queued');
              buf.set(enc('XXX')); // the caller reuses its buffer: the queue must hold a copy
              pool.send(2, dst, enc('two'));
              await until('region 2 connected', 3_000, () => pool.isUp(2));
              assert.equal(pool.send(2, dst, enc('three')), true);
              await until('three packets at region 2', 3_000, () => received.length === 3);
              assert.deepEqual(received, ['one', 'two', 'three']);
              assert.deepEqual(pool.connected().sort(), [1, 2]);
            } finally {
              pool.close();
            }
          },
        ),
    );
  });
});

describe('netcheck', () => {
  test('regions from a DERP map: STUN target, dialable nodes, hostile entries skipped', () => {
    const regions = netcheckRegions({
      '2': { RegionID: 2, Nodes: [{ HostName: 'b', IPv4: '192.0.2.2', STUNPort: 0 }] },
      '1': {
        RegionID: 1,
        Nodes: [
          { HostName: 'stun-only', IPv4: '192.0.2.1', STUNPort: 3479, STUNOnly: true },
          { HostName: 'relay', IPv4: '192.0.2.9', STUNPort: -1 },
        ],
      },
      '3': { RegionID: 3, Nodes: [{ HostName: 'derp.example.com', STUNPort: 3478 }] },
      bad: null,
      worse: { RegionID: 'x', Nodes: [] },
      nodes: { RegionID: 4, Nodes: [null, 7, { IPv4: '192.0.2.4' }] },
    });
    assert.deepEqual(
      regions.map((r) => [r.id, r.stun ? `${r.stun.address}:${r.stun.port}` : '-', r.derpNodes.map((n) => n.HostName)]),
      [
        [1, '192.0.2.1:3479', ['relay']],
        [2, '192.0.2.2:3478', ['b']],
        [3, '-', ['derp.example.com']], // a DNS name is not resolved for STUN
        [4, '-', []],
      ],
    );
  });

  test('home region: the fastest, unless the current one is within 10 ms or a third of it', () => {
    const lat = (o: Record<number, number>) => new Map(Object.entries(o).map(([k, v]) => [Number(k), v]));
    assert.equal(choosePreferred(lat({ 1: 30, 2: 10 }), 0, [1, 2]), 2);
    assert.equal(choosePreferred(lat({ 1: 12, 2: 10 }), 1, [1, 2]), 1, 'keeps a home that is nearly as fast');
    assert.equal(choosePreferred(lat({ 1: 9, 2: 1 }), 1, [1, 2]), 1, 'keeps it when the gain is under 10 ms');
    assert.equal(choosePreferred(lat({ 1: 40, 2: 29 }), 1, [1, 2]), 1, 'keeps it when the gain is under a third');
    assert.equal(choosePreferred(lat({ 1: 30, 2: 10 }), 1, [1, 2]), 2, 'moves when another is clearly faster');
    assert.equal(choosePreferred(lat({ 2: 10 }), 1, [1, 2]), 2, 'moves when the home stops answering');
    assert.equal(choosePreferred(lat({}), 2, [1, 2]), 2, 'no answers: keep the home');
    assert.equal(choosePreferred(lat({}), 0, [5, 3]), 5, 'no answers and no home: the first region');
    assert.equal(choosePreferred(lat({}), 0, []), 0);
  });
});
