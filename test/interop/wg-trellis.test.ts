// Two Trellis `wg up` instances, each in its own namespace: the same checks as against wireguard-go,
// plus a rekey under shortened test timers with traffic flowing across it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Lab, type Namespace, withLab } from './lab/netns.ts';
import { delay } from './lab/proc.ts';
import { requireTools } from './lab/tools.ts';
import { tcpTransfer, waitPing } from './lab/traffic.ts';
import { startTrellisWg, type TrellisWg } from './lab/trellis.ts';
import { genKey, genPsk, pubKey } from './lab/wggo.ts';

const TOOLS = ['wg', 'ip', 'ping'];
const MB = 1024 * 1024;
const A4 = '203.0.113.1';
const B4 = '203.0.113.2';
const A6 = '2001:db8:100::1';
const B6 = '2001:db8:100::2';

async function setup(
  lab: Lab,
  o: { psk: boolean; initiator: 'a' | 'b'; env?: Record<string, string> },
): Promise<{ a: TrellisWg; b: TrellisWg; nsA: Namespace; nsB: Namespace }> {
  const nsA = await lab.addNamespace('a');
  const nsB = await lab.addNamespace('b');
  await lab.linkVeth(nsA, nsB, { a: '192.0.2.1/24', b: '192.0.2.2/24' });
  const [kA, kB] = [await genKey(), await genKey()];
  const psk = o.psk ? await genPsk() : undefined;
  const a = await startTrellisWg(
    nsA,
    {
      name: 'tra',
      privateKey: kA,
      listenPort: 51820,
      addresses: [`${A4}/24`, `${A6}/64`],
      peers: [
        {
          publicKey: await pubKey(kB),
          presharedKey: psk,
          allowedIPs: [`${B4}/32`, `${B6}/128`],
          endpoint: o.initiator === 'a' ? '192.0.2.2:51820' : undefined,
        },
      ],
    },
    o.env,
  );
  const b = await startTrellisWg(
    nsB,
    {
      name: 'trb',
      privateKey: kB,
      listenPort: 51820,
      addresses: [`${B4}/24`, `${B6}/64`],
      peers: [
        {
          publicKey: await pubKey(kA),
          presharedKey: psk,
          allowedIPs: [`${A4}/32`, `${A6}/128`],
          endpoint: o.initiator === 'b' ? '192.0.2.1:51820' : undefined,
        },
      ],
    },
    o.env,
  );
  return { a, b, nsA, nsB };
}

describe('trellis wg ↔ trellis wg', () => {
  for (const [initiator, psk] of [
    ['a', false],
    ['b', true],
  ] as const) {
    test(`${initiator} initiates, ${psk ? 'with' : 'without'} PSK: ping v4/v6 both ways, 50 MB each way`, async (t) => {
      if (!requireTools(t, TOOLS)) return;
      await withLab(t, async (lab) => {
        const { a, b, nsA, nsB } = await setup(lab, { psk, initiator });
        const [first, firstDst] = initiator === 'a' ? [nsA, B4] : [nsB, A4];
        assert.ok(await waitPing(first, firstDst, 10_000), 'initiator reaches the responder');
        assert.ok(await waitPing(nsA, B4, 5_000));
        assert.ok(await waitPing(nsB, A4, 5_000));
        assert.ok(await waitPing(nsA, B6, 5_000), 'IPv6 a → b');
        assert.ok(await waitPing(nsB, A6, 5_000), 'IPv6 b → a');
        const ab = await tcpTransfer({ fromNs: nsA, toNs: nsB, toAddr: B4, port: 5001, bytes: 50 * MB });
        assert.equal(ab.receivedBytes, 50 * MB);
        assert.equal(ab.receivedSha256, ab.sentSha256);
        const ba = await tcpTransfer({ fromNs: nsB, toNs: nsA, toAddr: A6, port: 5002, bytes: 50 * MB, seed: 3 });
        assert.equal(ba.receivedBytes, 50 * MB);
        assert.equal(ba.receivedSha256, ba.sentSha256, 'b → a over IPv6 intact');
        const [sa, sb] = [await a.show(), await b.show()];
        assert.ok(sa.peers[0].latestHandshake > 0 && sb.peers[0].latestHandshake > 0);
        assert.equal(sa.peers[0].endpoint, '192.0.2.2:51820');
        assert.equal(sb.peers[0].endpoint, '192.0.2.1:51820');

        // SIGTERM tears everything down: the process exits 0 and the interface is gone.
        await a.stop();
        assert.equal(a.process.exitCode, 0, a.process.output());
        assert.match(a.process.output(), /SIGTERM: taking tra down/);
        assert.doesNotMatch(await nsA.exec(['ip', '-o', 'link', 'show']), /\btra\b/);
      });
    });
  }

  test('rekey under shortened timers: several handshakes, and a transfer across them stays intact', async (t) => {
    if (!requireTools(t, TOOLS)) return;
    await withLab(t, async (lab) => {
      // Test-only timers: rekey every 2 s; reject after 4 s so a missed rekey would break the transfer.
      const timers = { rekeyAfterTime: 2000, rejectAfterTime: 4000, rekeyTimeout: 500, keepaliveTimeout: 1000 };
      const env = { TRELLIS_TEST_WG_TIMERS: JSON.stringify(timers) };
      const { a, b, nsA, nsB } = await setup(lab, { psk: false, initiator: 'a', env });
      assert.ok(await waitPing(nsA, B4, 10_000));
      const before = a.handshakes() + b.handshakes();
      const started = Date.now();
      const r = await tcpTransfer({ fromNs: nsA, toNs: nsB, toAddr: B4, port: 5003, bytes: 60 * MB });
      // Keep traffic going for at least three rekey periods in case the transfer was quick.
      for (let i = 0; i < 100 && Date.now() - started < 7000; i++) {
        assert.ok(await waitPing(nsB, A4, 1_000), 'traffic keeps flowing while keys rotate');
        await delay(100);
      }
      assert.equal(r.receivedSha256, r.sentSha256, 'data intact across rekeys');
      const rekeys = a.handshakes() + b.handshakes() - before;
      assert.ok(rekeys >= 4, `handshake completions during the run: ${rekeys}`);
      assert.ok(await waitPing(nsB, A4, 2_000), 'still flowing after the rekeys');
      t.diagnostic(`${rekeys} handshake completions over ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
  });
});
