// Trellis `wg up` against wireguard-go, each in its own network namespace joined by a veth pair.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Lab, type Namespace, withLab } from './lab/netns.ts';
import { delay } from './lab/proc.ts';
import { requireTools } from './lab/tools.ts';
import { tcpTransfer, waitPing } from './lab/traffic.ts';
import { startTrellisWg, type TrellisWg } from './lab/trellis.ts';
import { genKey, genPsk, pubKey, startWireguardGo, type WireguardGo } from './lab/wggo.ts';

const TOOLS = ['wireguard-go', 'wg', 'ip', 'ping', 'python3'];
const MB = 1024 * 1024;
const HOSTILE_PY = fileURLToPath(new URL('./lab/hostile.py', import.meta.url));
const GARBAGE_MJS = fileURLToPath(new URL('./lab/garbage.mjs', import.meta.url));

const T4 = '203.0.113.1'; // Trellis inner
const G4 = '203.0.113.2'; // wireguard-go inner
const T6 = '2001:db8:100::1';
const G6 = '2001:db8:100::2';

interface Pair {
  trellis: TrellisWg;
  wggo: WireguardGo;
  nsT: Namespace;
  nsG: Namespace;
}

async function setup(
  lab: Lab,
  o: { psk: boolean; initiator: 'trellis' | 'wggo'; wggoKnowsEndpoint?: boolean },
): Promise<Pair> {
  const nsT = await lab.addNamespace('t');
  const nsG = await lab.addNamespace('g');
  await lab.linkVeth(nsT, nsG, { a: '192.0.2.1/24', b: '192.0.2.2/24' });
  const [kT, kG] = [await genKey(), await genKey()];
  const [pT, pG] = [await pubKey(kT), await pubKey(kG)];
  const psk = o.psk ? await genPsk() : undefined;
  const wggo = await startWireguardGo(nsG, {
    privateKey: kG,
    listenPort: 51820,
    address4: `${G4}/24`,
    address6: `${G6}/64`,
    mtu: 1420,
    peers: [
      {
        publicKey: pT,
        presharedKey: psk,
        allowedIPs: [`${T4}/32`, `${T6}/128`],
        endpoint: o.initiator === 'wggo' || o.wggoKnowsEndpoint ? '192.0.2.1:51820' : undefined,
      },
    ],
  });
  const trellis = await startTrellisWg(nsT, {
    name: 'trwg0',
    privateKey: kT,
    listenPort: 51820,
    addresses: [`${T4}/24`, `${T6}/64`],
    peers: [
      {
        publicKey: pG,
        presharedKey: psk,
        allowedIPs: [`${G4}/32`, `${G6}/128`],
        endpoint: o.initiator === 'trellis' ? '192.0.2.2:51820' : undefined,
      },
    ],
  });
  return { trellis, wggo, nsT, nsG };
}

describe('trellis wg ↔ wireguard-go', () => {
  for (const psk of [false, true]) {
    for (const initiator of ['trellis', 'wggo'] as const) {
      test(`${initiator} initiates, ${psk ? 'with' : 'without'} PSK: ping v4/v6 both ways, 50 MB each way`, async (t) => {
        if (!requireTools(t, TOOLS)) return;
        await withLab(t, async (lab) => {
          const { trellis, wggo, nsT, nsG } = await setup(lab, { psk, initiator });
          const [first, second] = initiator === 'trellis' ? [nsT, nsG] : [nsG, nsT];
          const [firstDst, secondDst] = initiator === 'trellis' ? [G4, T4] : [T4, G4];
          assert.ok(await waitPing(first, firstDst, 10_000), 'initiator reaches the responder over IPv4');
          assert.ok(await waitPing(second, secondDst, 5_000), 'responder reaches back over IPv4');
          assert.ok(await waitPing(nsT, G6, 5_000), 'Trellis → wireguard-go over IPv6');
          assert.ok(await waitPing(nsG, T6, 5_000), 'wireguard-go → Trellis over IPv6');

          const up = await tcpTransfer({ fromNs: nsT, toNs: nsG, toAddr: G4, port: 5001, bytes: 50 * MB });
          assert.equal(up.receivedBytes, 50 * MB);
          assert.equal(up.receivedSha256, up.sentSha256, 'Trellis → wireguard-go intact');
          const down = await tcpTransfer({ fromNs: nsG, toNs: nsT, toAddr: T4, port: 5002, bytes: 50 * MB, seed: 7 });
          assert.equal(down.receivedBytes, 50 * MB);
          assert.equal(down.receivedSha256, down.sentSha256, 'wireguard-go → Trellis intact');

          const st = await trellis.show();
          assert.equal(st.peers.length, 1);
          assert.ok(st.peers[0].latestHandshake > 0, 'Trellis reports a handshake');
          assert.ok(
            st.peers[0].rxBytes > 50 * MB && st.peers[0].txBytes > 50 * MB,
            'byte counters cover the transfers',
          );
          assert.equal(st.peers[0].endpoint, '192.0.2.2:51820');
          const g = await wggo.show();
          assert.ok(g.peers[0].latestHandshake > 0);
          assert.equal(g.peers[0].endpoint, '192.0.2.1:51820', 'wireguard-go learned or kept our endpoint');
          t.diagnostic(
            `50 MB up ${(400 / up.seconds).toFixed(0)} Mbit/s, down ${(400 / down.seconds).toFixed(0)} Mbit/s`,
          );
        });
      });
    }
  }

  test('wireguard-go restarted mid-transfer: Trellis re-handshakes and traffic flows again within 10 s', async (t) => {
    if (!requireTools(t, TOOLS)) return;
    await withLab(t, async (lab) => {
      const { trellis, wggo, nsT, nsG } = await setup(lab, {
        psk: false,
        initiator: 'trellis',
        wggoKnowsEndpoint: true,
      });
      assert.ok(await waitPing(nsT, G4, 10_000));
      const before = trellis.handshakes();
      // wireguard-go's side sends: after its restart it has fresh traffic and no session, so it initiates
      // and Trellis must accept a new initiation from a peer that lost all state.
      // Long enough to be still running at the restart (40 MB took 0.5 s once the data path got faster, and a
      // finished transfer leaves wireguard-go nothing to send: only the 15 s timer of the next test recovers that).
      let finished = false;
      const transfer = tcpTransfer({
        fromNs: nsG,
        toNs: nsT,
        toAddr: T4,
        port: 5003,
        bytes: 400 * MB,
        timeoutMs: 90_000,
      }).finally(() => {
        finished = true;
      });
      await delay(700);
      assert.equal(finished, false, 'the transfer is still running when wireguard-go restarts');
      await wggo.restart();
      const back = Date.now();
      assert.ok(await waitPing(nsT, G4, 10_000), 'Trellis reaches wireguard-go within 10 s of its restart');
      const recovered = (Date.now() - back) / 1000;
      const r = await transfer;
      assert.equal(r.receivedBytes, 400 * MB);
      assert.equal(r.receivedSha256, r.sentSha256, 'the transfer survives the restart intact');
      assert.ok(trellis.handshakes() > before, 'a new handshake happened');
      t.diagnostic(`traffic flowed again ${recovered.toFixed(2)} s after wireguard-go came back`);
    });
  });

  test('wireguard-go restarted while only Trellis sends: the new-handshake timer (15 s) recovers the session', async (t) => {
    if (!requireTools(t, TOOLS)) return;
    await withLab(t, async (lab) => {
      const { trellis, wggo, nsT } = await setup(lab, { psk: false, initiator: 'trellis' });
      assert.ok(await waitPing(nsT, G4, 10_000));
      const before = trellis.handshakes();
      await wggo.restart(); // it has no endpoint for Trellis: only Trellis can start the new session
      const restarted = Date.now();
      // Trellis keeps sending on its old session, which the new wireguard-go cannot decrypt; after
      // KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s) without an answer it must initiate again.
      const pinger = nsT.spawn(['ping', '-i', '0.2', '-w', '25', G4], { label: 'steady ping' });
      let rehandshake = false;
      for (let i = 0; i < 250 && Date.now() - restarted < 25_000 && !rehandshake; i++) {
        await delay(100);
        rehandshake = trellis.handshakes() > before;
      }
      const took = (Date.now() - restarted) / 1000;
      await pinger.stop();
      assert.ok(rehandshake, 'Trellis initiated a new handshake on its own');
      assert.ok(took <= 17, `new handshake ${took.toFixed(1)} s after the restart (15 s + jitter + tick)`);
      assert.ok(await waitPing(nsT, G4, 3_000), 'traffic flows on the new session');
      t.diagnostic(`sender-only recovery: new session ${took.toFixed(2)} s after restart`);
    });
  });

  test('foreign inner source, replayed data and hostile datagrams are dropped and counted; the tunnel keeps working', async (t) => {
    if (!requireTools(t, TOOLS)) return;
    await withLab(t, async (lab) => {
      const { trellis, wggo, nsT, nsG } = await setup(lab, {
        psk: false,
        initiator: 'trellis',
        wggoKnowsEndpoint: true,
      });
      assert.ok(await waitPing(nsT, G4, 10_000));

      // wireguard-go sends from an address outside the AllowedIPs Trellis has for it.
      await nsG.exec(['ip', 'addr', 'add', '203.0.113.99/32', 'dev', wggo.ifname]);
      await nsG.run(['ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', '203.0.113.99', T4]);
      const afterForeign = await trellis.show();
      assert.ok(
        afterForeign.drops.notAllowedSource >= 3,
        `dropped foreign source (${afterForeign.drops.notAllowedSource})`,
      );

      // Replay: capture a transport datagram on Trellis's side of the veth, then send it again.
      const vethT = (await nsT.exec(['ip', '-o', 'link', 'show', 'type', 'veth'])).split(':')[1].trim().split('@')[0];
      const capture = nsT.exec(['python3', HOSTILE_PY, vethT, '192.0.2.1', '51820'], { timeoutMs: 15_000 });
      await delay(300);
      await nsG.run(['ping', '-c', '3', '-i', '0.2', '-W', '1', T4]);
      await capture;
      await delay(200);
      const afterReplay = await trellis.show();
      assert.ok(afterReplay.drops.replay >= 2, `replayed datagrams dropped (${afterReplay.drops.replay})`);

      // Only the counters of inbound datagrams: the kernel's own IPv6 chatter on the TUN (neighbour
      // discovery, MLD) is counted too, as outbound packets with no route.
      const outbound = new Set(['noRoute', 'noEndpoint', 'malformedInner']);
      const sum = (d: object) =>
        Object.entries(d)
          .filter(([k]) => !outbound.has(k))
          .reduce((a, [, n]) => a + (n as number), 0);
      const beforeGarbage = sum(afterReplay.drops);
      const out = await nsG.exec(['node', GARBAGE_MJS, '192.0.2.1', '51820']);
      const { sent } = JSON.parse(out) as { sent: number };
      await delay(300);
      const afterGarbage = await trellis.show();
      assert.equal(sum(afterGarbage.drops) - beforeGarbage, sent, 'every hostile datagram is counted');
      assert.ok(afterGarbage.drops.badMac1 >= 1 && afterGarbage.drops.badSize >= 5);
      assert.ok(await waitPing(nsT, G4, 3_000), 'still works after the abuse');
      assert.equal(trellis.process.hasExited, false);
    });
  });
});
