// A synthetic full MapResponse shaped like Headscale's, with n peers, as the bytes the wire would carry.
export function syntheticMapResponse(n: number): string {
  const peers = [];
  for (let i = 2; i < n + 2; i++) {
    const hex = i.toString(16).padStart(64, '0');
    const a = `${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    peers.push({
      ID: i,
      StableID: String(i),
      Name: `host-${i}.tailnet.test.`,
      User: 1 + (i % 20),
      Key: `nodekey:${hex}`,
      Machine: `mkey:${hex}`,
      DiscoKey: `discokey:${hex}`,
      Addresses: [`100.${a}/32`, `fd7a:115c:a1e0::${i.toString(16)}/128`],
      AllowedIPs: [`100.${a}/32`, `fd7a:115c:a1e0::${i.toString(16)}/128`],
      Endpoints: [`198.51.100.${i % 250}:41641`, `[2001:db8::${i.toString(16)}]:41641`],
      HomeDERP: 999,
      Hostinfo: {
        OS: i % 3 === 0 ? 'windows' : 'linux',
        Hostname: `host-${i}`,
        Services: [
          { Proto: 'peerapi4', Port: 40000 + (i % 1000) },
          { Proto: 'peerapi6', Port: 40000 + (i % 1000) },
        ],
        NetInfo: { PreferredDERP: 999 },
      },
      Created: '2026-11-01T10:00:00Z',
      Cap: 130,
      Online: i % 2 === 0,
      MachineAuthorized: true,
      CapMap: { 'https://tailscale.com/cap/file-sharing': [] },
    });
  }
  return JSON.stringify({
    Node: { ID: 1, Name: 'self.tailnet.test.', User: 1, Addresses: ['100.64.0.1/32'] },
    DERPMap: { Regions: { '999': { RegionID: 999, RegionCode: 'hs', Nodes: [] } } },
    Peers: peers,
    UserProfiles: Array.from({ length: 20 }, (_, k) => ({ ID: k + 1, LoginName: `user${k + 1}` })),
    Domain: 'tailnet.test',
    PacketFilters: { base: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }] },
  });
}
