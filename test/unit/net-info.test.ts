// Hostinfo.NetInfo in tailscaled's shape, and the port-mapping probe against a fake gateway on loopback.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { buildNetInfo, netInfoKey } from '../../main/engine/control/net-info.ts';
import { buildHostinfo } from '../../main/engine/control/requests.ts';
import { classifyAnswer, pcpAnnounce, probePortMapping } from '../../main/engine/magicsock/portmap-probe.ts';

test('NetInfo: tailscaled field names, latencies in seconds per "<region>-v4", unknowns left out', () => {
  const n = buildNetInfo(7, {
    udp: true,
    regionLatencyMs: new Map([
      [7, 12.5],
      [9, 40],
    ]),
    workingIPv6: false,
    osHasIPv6: true,
    firewallMode: 'ipt-default',
  });
  assert.deepEqual(n, {
    WorkingIPv6: false,
    OSHasIPv6: true,
    WorkingUDP: true,
    WorkingICMPv4: false,
    PreferredDERP: 7,
    DERPLatency: { '7-v4': 0.0125, '9-v4': 0.04 },
    FirewallMode: 'ipt-default',
  });
  assert.ok(!('UPnP' in n) && !('MappingVariesByDestIP' in n), 'not checked: absent, not false');
  const withMap = buildNetInfo(7, {
    udp: false,
    regionLatencyMs: new Map(),
    mappingVariesByDestIP: true,
    workingIPv6: false,
    osHasIPv6: false,
    portMap: { upnp: true, pmp: false, pcp: false },
  });
  assert.equal(withMap.MappingVariesByDestIP, true);
  assert.equal(withMap.UPnP, true);
  assert.equal(withMap.PMP, false);
  assert.ok(!('DERPLatency' in withMap));
  // Latency moves do not count as a change worth telling control about; a NAT change does.
  const moved = buildNetInfo(7, {
    udp: true,
    regionLatencyMs: new Map([[7, 99]]),
    workingIPv6: false,
    osHasIPv6: true,
  });
  const same = buildNetInfo(7, { udp: true, regionLatencyMs: new Map([[7, 1]]), workingIPv6: false, osHasIPv6: true });
  assert.equal(netInfoKey(moved), netInfoKey(same));
  assert.notEqual(netInfoKey(moved), netInfoKey(withMap));
});

test('Hostinfo carries NetInfo only once a home region is chosen', () => {
  const facts = { udp: true, regionLatencyMs: new Map([[1, 5]]), workingIPv6: false, osHasIPv6: true };
  assert.equal(buildHostinfo('box', 0, [], [], facts).NetInfo, undefined);
  assert.equal(buildHostinfo('box', 1, [], [], facts).NetInfo?.WorkingUDP, true);
  assert.deepEqual(buildHostinfo('box', 1).NetInfo, { PreferredDERP: 1 });
});

test('port-mapping answers are told apart; garbage and failures are not a service', () => {
  assert.equal(classifyAnswer(Uint8Array.of(0, 128, 0, 0, 0, 0, 0, 1, 203, 0, 113, 5), 5351), 'pmp');
  assert.equal(classifyAnswer(Uint8Array.of(0, 128, 0, 3), 5351), undefined, 'PMP error result');
  const pcp = new Uint8Array(24);
  pcp[0] = 2;
  pcp[1] = 0x80;
  assert.equal(classifyAnswer(pcp, 5351), 'pcp');
  pcp[3] = 1; // UNSUPP_VERSION
  assert.equal(classifyAnswer(pcp, 5351), undefined);
  assert.equal(classifyAnswer(Uint8Array.of(1), 5351), undefined);
  const ssdp = Buffer.from('HTTP/1.1 200 OK\r\nST: x\r\nLOCATION: http://192.0.2.1:5000/igd.xml\r\n\r\n');
  assert.equal(classifyAnswer(ssdp, 1900), 'upnp');
  assert.equal(classifyAnswer(Buffer.from('HTTP/1.1 404 Not Found\r\n\r\n'), 1900), undefined);
  const a = pcpAnnounce('192.0.2.10');
  assert.deepEqual([...a.subarray(0, 2)], [2, 0]);
  assert.deepEqual([...a.subarray(16, 24)], [0, 0, 0xff, 0xff, 192, 0, 2, 10]);
});

test('the probe asks a fake gateway on loopback and reports what answered, within its wait', async () => {
  const pmp = createSocket('udp4');
  const ssdp = createSocket('udp4');
  const seen: string[] = [];
  await new Promise<void>((r) => pmp.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => ssdp.bind(0, '127.0.0.1', () => r()));
  pmp.on('message', (msg, from) => {
    seen.push(msg[0] === 0 ? 'pmp' : 'pcp');
    if (msg[0] === 0) pmp.send(Uint8Array.of(0, 128, 0, 0, 0, 0, 0, 1, 192, 0, 2, 1), from.port, from.address);
    // no PCP answer: a gateway with NAT-PMP only
  });
  ssdp.on('message', (msg, from) => {
    seen.push(Buffer.from(msg).toString('latin1').split('\r\n')[0]);
    ssdp.send('HTTP/1.1 200 OK\r\nLOCATION: http://127.0.0.1/igd.xml\r\n\r\n', from.port, from.address);
  });
  try {
    const r = await probePortMapping({
      gateway: '127.0.0.1',
      pmpPort: pmp.address().port,
      ssdp: { address: '127.0.0.1', port: ssdp.address().port },
      waitMs: 300,
    });
    assert.deepEqual(r, { upnp: true, pmp: true, pcp: false });
    assert.deepEqual(seen.sort(), ['M-SEARCH * HTTP/1.1', 'pcp', 'pmp']);
    const silent = await probePortMapping({
      gateway: '127.0.0.1',
      pmpPort: 9,
      ssdp: { address: '127.0.0.1', port: 9 },
      waitMs: 100,
    });
    assert.deepEqual(silent, { upnp: false, pmp: false, pcp: false });
  } finally {
    pmp.close();
    ssdp.close();
  }
});
