// MapResponse JSON from the control server, through what the engine does with each message before the data path
// (which needs a TUN): NetMap.apply, then keyExpired/selfSummary/peerSummaries (status and the netmap event),
// compileFilter(packetFilter()), buildDnsTable and netcheckRegions (data path update). None of them may throw on
// any JSON object: the netmap's contract is "malformed entries are skipped and counted".
// One input is up to four messages separated by a NUL, applied to one NetMap, so deltas meet a full map.
import { NetMap } from '../../../main/engine/control/netmap.ts';
import type { MapResponse } from '../../../main/engine/control/tailcfg.ts';
import { keyExpired, peerSummaries, selfSummary } from '../../../main/engine/core/status.ts';
import { buildDnsTable } from '../../../main/engine/dns/table.ts';
import { compileFilter } from '../../../main/engine/filter/compile.ts';
import { netcheckRegions } from '../../../main/engine/magicsock/netcheck.ts';

export function fuzz(data: Buffer): void {
  const nm = new NetMap();
  for (const part of data.toString('utf8').split('\0', 4)) {
    let msg: unknown;
    try {
      msg = JSON.parse(part);
    } catch {
      continue;
    }
    // session.ts passes on JSON objects only.
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) continue;
    if (!nm.apply(msg as MapResponse)) continue;
    const self = nm.self;
    if (!self) continue;
    keyExpired(self);
    selfSummary(nm);
    peerSummaries(nm);
    compileFilter(nm.packetFilter());
    buildDnsTable(nm.self, nm.peers.values(), nm.dns);
    netcheckRegions(nm.derpMap.Regions as Record<string, unknown>);
  }
}
