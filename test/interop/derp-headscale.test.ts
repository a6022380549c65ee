// The DERP client against a real Headscale (v0.29.2) and its embedded DERP server, over plain HTTP on loopback.
// Headscale runs with derp.server.verify_clients: true, so only node keys of registered nodes are admitted: the
// test registers two nodes through our control plane first.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { CAPABILITY_VERSION } from '../../main/engine/control/dial.ts';
import { ControlSession } from '../../main/engine/control/session.ts';
import { ZERO_TIME } from '../../main/engine/control/tailcfg.ts';
import { keyToText, publicText } from '../../main/engine/crypto/key-text.ts';
import { DerpClient, DerpError } from '../../main/engine/derp/client.ts';
import { generatePrivateKey } from '../../main/engine/wg/crypto.ts';
import { type Headscale, startHeadscale } from './lab/headscale.ts';
import { requireTools } from './lab/tools.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Registers a fresh node key with a pre-auth key (RegisterRequest over ts2021); returns its private key. */
async function registerNode(hs: Headscale, authKey: string, hostname: string): Promise<Uint8Array> {
  const nodePrivate = generatePrivateKey();
  const session = await ControlSession.open(hs.url, generatePrivateKey(), 10_000);
  try {
    const resp = await session.register(
      {
        Version: CAPABILITY_VERSION,
        NodeKey: publicText('nodekey', nodePrivate),
        OldNodeKey: keyToText('nodekey', new Uint8Array(32)),
        Expiry: ZERO_TIME,
        Followup: '',
        Hostinfo: { Hostname: hostname },
        Auth: { AuthKey: authKey },
      },
      20_000,
    );
    assert.equal(resp.MachineAuthorized, true, `registration of ${hostname} failed: ${resp.Error ?? ''}`);
  } finally {
    session.close();
  }
  return nodePrivate;
}

/** Collects packets per sender; waitFor resolves once n have come (or rejects after ms). */
function collector(c: DerpClient) {
  const got: { src: string; packet: Buffer }[] = [];
  c.onPacket((src, packet) => got.push({ src: hex(src), packet: Buffer.from(packet) }));
  const waitFor = async (n: number, ms = 5_000): Promise<void> => {
    const until = Date.now() + ms;
    while (got.length < n && Date.now() < until) await delay(5);
    if (got.length < n) throw new Error(`got ${got.length} of ${n} packets within ${ms} ms`);
  };
  return { got, waitFor };
}

/** Packet i of a burst: 1280 bytes, index in the first two, the rest derived from it. */
function burstPacket(i: number, salt: number): Buffer {
  const p = Buffer.alloc(1280);
  p.writeUInt16BE(i, 0);
  for (let j = 2; j < p.length; j++) p[j] = (i * 31 + j + salt) & 0xff;
  return p;
}

test('DERP client against Headscale embedded DERP (plain HTTP)', async (t) => {
  if (!requireTools(t, ['headscale'])) return;
  const hs = await startHeadscale({});
  const url = `${hs.url}/derp`;
  const port = Number(new URL(hs.url).port);
  const node = { HostName: '127.0.0.1', IPv4: '127.0.0.1', IPv6: 'none', DERPPort: port };
  const clients: DerpClient[] = [];
  const connect = async (privateKey: Uint8Array, viaNode = false) => {
    const c = await DerpClient.connect(
      viaNode ? { node, useTLS: false, privateKey, timeoutMs: 5_000 } : { url, privateKey, timeoutMs: 5_000 },
    );
    clients.push(c);
    return c;
  };
  try {
    await t.test('an unregistered node key is refused with a clear DerpError', async () => {
      const stranger = generatePrivateKey();
      await assert.rejects(DerpClient.connect({ url, privateKey: stranger, timeoutMs: 5_000 }), (e) => {
        assert.ok(e instanceof DerpError, String(e));
        assert.equal(e.kind, 'closed');
        assert.match(e.message, /did not admit nodekey:[0-9a-f]{64}.*registered nodes/);
        assert.ok(e.message.includes(publicText('nodekey', stranger)));
        return true;
      });
    });

    const user = await hs.createUser('derp');
    const authKey = await hs.createAuthKey(user, { reusable: true, expiration: '1h' });
    const aKey = await registerNode(hs, authKey, 'derp-a');
    const bKey = await registerNode(hs, authKey, 'derp-b');

    await t.test('two registered nodes exchange packets both ways; ping; PeerGone when one leaves', async () => {
      const a = await connect(aKey);
      const b = await connect(bKey, true); // the DERP-map node form: HostName/IPv4/DERPPort, no TLS
      assert.equal(a.serverInfo.version, 2);
      assert.equal(hex(a.serverPublicKey), hex(b.serverPublicKey));
      a.notePreferred(true);
      const ra = collector(a);
      const rb = collector(b);
      const hello = Buffer.from('hello from a');
      const big = randomBytes(1280);
      assert.ok(a.send(b.publicKey, hello));
      assert.ok(b.send(a.publicKey, big));
      await rb.waitFor(1);
      await ra.waitFor(1);
      assert.deepEqual(rb.got[0], { src: hex(a.publicKey), packet: hello });
      assert.deepEqual(ra.got[0], { src: hex(b.publicKey), packet: big });
      const rtt = await a.ping();
      t.diagnostic(`DERP ping RTT ${rtt.toFixed(2)} ms`);

      const gone = new Promise<[string, number]>((res) => a.onPeerGone((peer, reason) => res([hex(peer), reason])));
      b.close();
      const [peer, reason] = await Promise.race([gone, delay(5_000).then(() => ['timeout', -1] as [string, number])]);
      assert.deepEqual([peer, reason], [hex(b.publicKey), 0], 'a hears that b (who sent to it) disconnected');
      assert.ok(!a.closed);
      a.close();
    });

    await t.test('connect/close in a loop with the same key stays clean', async () => {
      for (let i = 0; i < 3; i++) {
        const c = await connect(aKey);
        assert.equal(await c.ping().then(() => 'pong'), 'pong');
        c.close();
        assert.ok(c.closed && c.closeError?.kind === 'closed');
      }
    });

    await t.test('200 × 1280 bytes in windows of 16: none lost, bytes equal, in order', async () => {
      const a = await connect(aKey);
      const b = await connect(bKey);
      const rb = collector(b);
      for (let i = 0; i < 200; i++) {
        assert.ok(a.send(b.publicKey, burstPacket(i, 1)));
        if (i % 16 === 15 || i === 199) await rb.waitFor(i + 1);
      }
      assert.deepEqual(
        rb.got.map((g) => g.packet),
        Array.from({ length: 200 }, (_, i) => burstPacket(i, 1)),
      );
      assert.ok(rb.got.every((g) => g.src === hex(a.publicKey)));
      a.close();
      b.close();
    });

    await t.test(
      'one burst of 200 at the stock 32-packet server queue: what arrives is intact and in order',
      async () => {
        const a = await connect(aKey);
        const b = await connect(bKey);
        const rb = collector(b);
        for (let i = 0; i < 200; i++) assert.ok(a.send(b.publicKey, burstPacket(i, 2)));
        await rb.waitFor(32);
        await delay(300); // stragglers
        const idx = rb.got.map((g) => g.packet.readUInt16BE(0));
        t.diagnostic(`stock queue depth: ${idx.length}/200 delivered (the server drops from the head of a full queue)`);
        assert.equal(a.droppedSends, 0, 'the client wrote every packet');
        assert.ok(
          idx.every((v, i) => i === 0 || v > idx[i - 1]),
          'in order',
        );
        assert.ok(
          rb.got.every((g) => g.packet.equals(burstPacket(g.packet.readUInt16BE(0), 2))),
          'intact',
        );
        a.close();
        b.close();
      },
    );

    await t.test('with a 256-deep server queue, 200 × 1280 bursts both ways at once lose nothing', async () => {
      // derpserver's per-client queue is 32 packets and drops from the head when a burst outruns its writer,
      // so a lossless burst needs a deeper queue: TS_DEBUG_DERP_PER_CLIENT_SEND_QUEUE_DEPTH, read at start.
      const before = clients.filter((c) => !c.closed).length;
      assert.equal(before, 0);
      process.env.TS_DEBUG_DERP_PER_CLIENT_SEND_QUEUE_DEPTH = '256';
      try {
        await hs.restart();
      } finally {
        delete process.env.TS_DEBUG_DERP_PER_CLIENT_SEND_QUEUE_DEPTH;
      }
      const a = await connect(aKey);
      const b = await connect(bKey, true);
      const ra = collector(a);
      const rb = collector(b);
      for (let i = 0; i < 200; i++) {
        assert.ok(a.send(b.publicKey, burstPacket(i, 3)));
        assert.ok(b.send(a.publicKey, burstPacket(i, 4)));
      }
      await Promise.all([ra.waitFor(200), rb.waitFor(200)]);
      const want = (salt: number) => Array.from({ length: 200 }, (_, i) => burstPacket(i, salt));
      assert.deepEqual(
        rb.got.map((g) => g.packet),
        want(3),
      );
      assert.deepEqual(
        ra.got.map((g) => g.packet),
        want(4),
      );

      // The server going away is reported once through onClose.
      const closed = new Promise<DerpError>((res) => a.onClose(res));
      await hs.kill();
      const err = await Promise.race([closed, delay(5_000).then(() => null)]);
      assert.ok(err instanceof DerpError && err.kind === 'closed', `onClose: ${err}`);
      await assert.rejects(DerpClient.connect({ url, privateKey: aKey, timeoutMs: 2_000 }), (e) => {
        return e instanceof DerpError && e.kind === 'unreachable';
      });
    });
  } catch (e) {
    console.error(`headscale output (tail):\n${hs.output().slice(-4000)}`);
    throw e;
  } finally {
    for (const c of clients) c.close();
    await hs.stop();
  }
});
