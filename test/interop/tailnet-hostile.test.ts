// Hostile input on the live sockets of a running Trellis node (lab/hostile.ts is the attacker): disco envelopes
// with boxes that do not open or from unknown keys, forged STUN responses that try to poison our public endpoint,
// junk that looks like WireGuard — at the UDP port from a LAN host, and the same through Headscale's DERP from a
// registered node. Each is counted in `trellis status` (counters), nothing crashes, and the tunnel keeps working.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { keyFromText } from '../../main/engine/crypto/key-text.ts';
import type { DataPathCounters } from '../../main/engine/protocol.ts';
import type { DerpAttack, UdpAttack } from './lab/hostile.ts';
import { withLab } from './lab/netns.ts';
import { claims, ready } from './lab/scenario.ts';
import {
  activeProfileDir,
  buildTailnetLab,
  HEADSCALE_ADDR,
  pingFrom,
  startTrellisNode,
  type TrellisNode,
} from './lab/tailnet.ts';

const HOSTILE = fileURLToPath(new URL('./lab/hostile.ts', import.meta.url));
const POISON = { ip: '192.0.2.66', port: 4444 };
const hexOf = (kind: 'nodekey' | 'discokey' | 'privkey', text: string): string =>
  Buffer.from(keyFromText(kind, text)).toString('hex');

async function counters(node: TrellisNode): Promise<DataPathCounters> {
  const c = (await node.status()).counters;
  if (!c) throw new Error('trellis status has no data-path counters');
  return c;
}

test('hostile input: bad disco, forged STUN, junk — over UDP and DERP — counted, no crash', {
  timeout: 90_000,
}, async (t) => {
  if (!ready(t)) return;
  await withLab(t, async (lab) => {
    const tn = await buildTailnetLab(lab, ['a', 'b', 'x']);
    const { headscale: hs, authKey } = tn;
    const hosts = { a: tn.hosts.a, b: tn.hosts.b, x: tn.hosts.x };
    if (!hosts.a || !hosts.b || !hosts.x) throw new Error('tailnet lab without hosts a, b, x');
    const start = (ns: NonNullable<typeof hosts.a>, hostname: string) =>
      startTrellisNode(ns, { hostname, loginServer: hs.url, authKey });
    const [a, b, x] = await Promise.all([start(hosts.a, 'a'), start(hosts.b, 'b'), start(hosts.x, 'x')]);
    // x is the attacker: registered (so Headscale's DERP admits its key), then its daemon goes away.
    const xKeys = JSON.parse(await readFile(path.join(await activeProfileDir(x.stateDir), 'keys.json'), 'utf8')) as {
      node: string;
    };
    await a.waitFor((s) => s.peers.length === 2, 10_000);
    await x.stop();
    const nodes = await hs.nodes();
    const nodeA = nodes.find((n) => n.name === 'a');
    const nodeB = nodes.find((n) => n.name === 'b');
    const discoB = nodeB?.raw.disco_key;
    if (!nodeA || !discoB)
      throw new Error(`headscale lists no node a, or no disco key for b: ${JSON.stringify(nodes)}`);
    const [ipA, ipB] = [(await a.ip()).v4, (await b.ip()).v4];
    const { claim, report } = claims(t, async () => lab.diagnostics());

    await claim('0. the tunnel works before the attack', async () => {
      assert.ok(await pingFrom(hosts.b, ipA, { count: 2, deadlineS: 15 }), 'b → a');
    });
    const before = await counters(a);
    const udpAttack: UdpAttack = {
      host: tn.addr('a'),
      port: a.port,
      knownDiscoKeyHex: hexOf('discokey', discoB),
      badBoxes: 40,
      unknownKeys: 40,
      forgedStun: 40,
      poison: POISON,
      junk: 60,
    };
    const derpAttack: DerpAttack = {
      url: `http://${HEADSCALE_ADDR}:8080/derp`,
      nodePrivateHex: hexOf('privkey', xKeys.node),
      victimHex: hexOf('nodekey', nodeA.nodeKey),
      knownDiscoKeyHex: hexOf('discokey', discoB),
      badBoxes: 20,
      unknownKeys: 20,
      junk: 20,
    };
    const attack = async (mode: 'udp' | 'derp', args: UdpAttack | DerpAttack): Promise<string> =>
      (
        await hosts.x.exec([process.execPath, '--import', 'tsx', HOSTILE, mode, JSON.stringify(args)], {
          timeoutMs: 30_000,
        })
      ).trim();

    await claim('1. attacks sent: UDP from a LAN host, DERP as a registered node', async (st) => {
      st.diagnostic(`udp: ${await attack('udp', udpAttack)}`);
      st.diagnostic(`derp: ${await attack('derp', derpAttack)}`);
    });
    await claim('2. every hostile packet counted in status, by kind', async (st) => {
      await new Promise((r) => setTimeout(r, 1_000));
      const after = await counters(a);
      const delta = Object.fromEntries(
        Object.entries(after).map(([k, v]) => [k, v - (before[k as keyof DataPathCounters] ?? 0)]),
      ) as unknown as DataPathCounters;
      st.diagnostic(`counter deltas: ${JSON.stringify(delta)}`);
      const disco = udpAttack.badBoxes + udpAttack.unknownKeys + derpAttack.badBoxes + derpAttack.unknownKeys;
      assert.ok(delta.discoRejected >= disco, `discoRejected +${delta.discoRejected}, want ≥ ${disco}`);
      assert.ok(delta.stunUnsolicited >= udpAttack.forgedStun, `stunUnsolicited +${delta.stunUnsolicited}`);
      const junk = udpAttack.junk + derpAttack.junk;
      assert.ok(delta.wgRejected >= junk, `wgRejected +${delta.wgRejected}, want ≥ ${junk}`);
    });
    await claim('3. forged STUN did not poison the endpoints reported to control', async (st) => {
      const r = await a.cli(['netcheck', '--json'], 15_000);
      st.diagnostic(r.stdout.trim());
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!r.stdout.includes(POISON.ip), `netcheck mentions the forged address ${POISON.ip}`);
    });
    await claim('4. the daemon is alive and the tunnel still works both ways', async () => {
      assert.equal(a.process.hasExited, false, 'daemon a exited');
      assert.ok(await pingFrom(hosts.a, ipB, { count: 2, deadlineS: 10 }), 'a → b');
      assert.ok(await pingFrom(hosts.b, ipA, { count: 2, deadlineS: 10 }), 'b → a');
    });
    await report();
  });
});
