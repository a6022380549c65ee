// `trellis wg` with AllowedIPs = 0.0.0.0/0, ::/0 against wireguard-go, the wg-quick way: the default routes in table
// 51820, the tunnel's UDP socket marked 51820, `not fwmark 51820 lookup 51820` and `lookup main
// suppress_prefixlength 0`. Namespace t (Trellis) reaches a host behind g (wireguard-go, which forwards to
// 198.51.100.0/24) only through the tunnel; the WireGuard datagrams themselves still go straight to g; and when the
// tunnel goes down, `ip rule` and `ip route show table all` are what they were before.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withLab } from './lab/netns.ts';
import { requireTools } from './lab/tools.ts';
import { waitPing } from './lab/traffic.ts';
import { startTrellisWg } from './lab/trellis.ts';
import { genKey, pubKey, startWireguardGo } from './lab/wggo.ts';

const FAR = '198.51.100.10';

async function routing(ns: { exec(cmd: string[]): Promise<string> }): Promise<string> {
  const parts: string[] = [];
  for (const f of ['-4', '-6']) {
    parts.push(await ns.exec(['ip', f, 'rule', 'show']));
    parts.push(await ns.exec(['ip', f, 'route', 'show', 'table', 'all']));
  }
  // The veth's IPv6 link-local address settles on its own time (DAD): its kernel routes are not ours to compare.
  return parts
    .join('\n')
    .split('\n')
    .filter((l) => !l.includes('fe80:'))
    .join('\n');
}

test('trellis wg full tunnel (0.0.0.0/0, ::/0) against wireguard-go', { timeout: 120_000 }, async (t) => {
  if (!requireTools(t, ['wireguard-go', 'wg', 'ip', 'ping'])) return;
  await withLab(t, async (lab) => {
    const nsT = await lab.addNamespace('t');
    const nsG = await lab.addNamespace('g');
    const nsF = await lab.addNamespace('far');
    await lab.linkVeth(nsT, nsG, { a: '192.0.2.1/24', b: '192.0.2.2/24' });
    await lab.linkVeth(nsG, nsF, { a: '198.51.100.1/24', b: `${FAR}/24` });
    await nsF.exec(['ip', 'route', 'add', 'default', 'via', '198.51.100.1']);
    await nsG.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const before = await routing(nsT);
    assert.equal(await waitPing(nsT, FAR, 2_000), false, 'control: t has no route to the far host without the tunnel');

    const [kT, kG] = [await genKey(), await genKey()];
    const [pT, pG] = [await pubKey(kT), await pubKey(kG)];
    await startWireguardGo(nsG, {
      privateKey: kG,
      listenPort: 51820,
      address4: '10.10.0.1/24',
      address6: 'fd00:10::1/64',
      peers: [{ publicKey: pT, allowedIPs: ['10.10.0.2/32', 'fd00:10::2/128'] }],
    });
    const wg = await startTrellisWg(nsT, {
      name: 'trwg0',
      privateKey: kT,
      listenPort: 51820,
      addresses: ['10.10.0.2/32', 'fd00:10::2/128'],
      peers: [{ publicKey: pG, allowedIPs: ['0.0.0.0/0', '::/0'], endpoint: '192.0.2.2:51820' }],
    });
    try {
      const rules4 = await nsT.exec(['ip', '-4', 'rule', 'show']);
      const rules6 = await nsT.exec(['ip', '-6', 'rule', 'show']);
      t.diagnostic(`ip -4 rule:\n${rules4}ip -6 rule:\n${rules6}`);
      for (const rules of [rules4, rules6]) {
        assert.match(rules, /not from all fwmark 0xca6c lookup 51820/);
        assert.match(rules, /from all lookup main suppress_prefixlength 0/);
      }
      assert.match(await nsT.exec(['ip', '-4', 'route', 'show', 'table', '51820']), /default dev trwg0/);
      assert.ok(await waitPing(nsT, FAR, 15_000), 't reaches the far host through the tunnel');
      assert.ok(await waitPing(nsT, '10.10.0.1', 5_000), 't reaches wireguard-go inside the tunnel');
      assert.ok(await waitPing(nsT, 'fd00:10::1', 5_000), 'and over IPv6');
      // The far host answers the tunnel address: the packets went through wireguard-go, not some other way.
      const show = await wg.show();
      assert.ok(show.peers[0] && show.peers[0].rxBytes > 0 && show.peers[0].latestHandshake > 0, 'a handshake');
      assert.equal(show.peers[0]?.endpoint, '192.0.2.2:51820', 'the datagrams go to g directly (fwmark)');
      assert.match(await nsT.exec(['cat', '/proc/sys/net/ipv4/conf/all/src_valid_mark']), /^1/);
    } finally {
      await wg.stop();
    }
    const after = await routing(nsT);
    assert.equal(after, before, 'ip rule and the routes are as they were before the tunnel');
    assert.match(
      await nsT.exec(['cat', '/proc/sys/net/ipv4/conf/all/src_valid_mark']),
      /^0/,
      'src_valid_mark put back',
    );
  });
});
