// The link monitor: which addresses count as "this machine's networks" (not loopback, not our TUN), and that each
// change is reported once while the state it starts from is not.
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { test } from 'node:test';
import { LinkMonitor, linkKey } from '../../main/engine/services/link-monitor.ts';

function addr(address: string, cidr: string, internal = false): NetworkInterfaceInfo {
  const v6 = address.includes(':');
  return {
    address,
    cidr,
    internal,
    netmask: v6 ? 'ffff:ffff:ffff:ffff::' : '255.255.255.0',
    family: v6 ? 'IPv6' : 'IPv4',
    mac: '02:00:00:00:00:01',
    ...(v6 ? { scopeid: 0 } : {}),
  } as NetworkInterfaceInfo;
}

test('linkKey: every address but loopback and the TUN, in a stable order', () => {
  const a = linkKey(
    {
      lo: [addr('127.0.0.1', '127.0.0.1/8', true)],
      trellis0: [addr('100.64.0.2', '100.64.0.2/32')],
      eth0: [addr('192.0.2.5', '192.0.2.5/24'), addr('2001:db8::5', '2001:db8::5/64')],
      wlan0: [addr('198.51.100.7', '198.51.100.7/24')],
    },
    'trellis0',
  );
  assert.equal(a, 'eth0 192.0.2.5/24\neth0 2001:db8::5/64\nwlan0 198.51.100.7/24');
  const reordered = linkKey(
    {
      wlan0: [addr('198.51.100.7', '198.51.100.7/24')],
      eth0: [addr('2001:db8::5', '2001:db8::5/64'), addr('192.0.2.5', '192.0.2.5/24')],
    },
    'trellis0',
  );
  assert.equal(reordered, a, 'the order the OS lists them in does not count as a change');
  assert.equal(
    linkKey({ trellis0: [addr('100.64.0.9', '100.64.0.9/32')] }, 'trellis0'),
    '',
    'our own addresses do not count',
  );
});

test('LinkMonitor: the starting state is not a change; each change after it is reported once', () => {
  let now: NodeJS.Dict<NetworkInterfaceInfo[]> = { eth0: [addr('192.0.2.5', '192.0.2.5/24')] };
  let changes = 0;
  const m = new LinkMonitor(
    'trellis0',
    () => changes++,
    () => now,
    60_000,
  );
  m.start();
  assert.equal(m.running, true);
  m.poll();
  assert.equal(changes, 0, 'nothing changed since start');
  now = { ...now, eth1: [addr('10.78.0.1', '10.78.0.1/24')] };
  m.poll();
  m.poll();
  assert.equal(changes, 1, 'a new LAN, reported once');
  now = { ...now, trellis0: [addr('100.64.0.2', '100.64.0.2/32')] };
  m.poll();
  assert.equal(changes, 1, 'the TUN coming up is not a network change');
  now = { eth1: [addr('10.78.0.1', '10.78.0.1/24')] };
  m.poll();
  assert.equal(changes, 2, 'a LAN gone');
  m.stop();
  assert.equal(m.running, false);
});
