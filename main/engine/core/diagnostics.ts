// What the engine reports about the data path: each peer's path for status, `ping` and `netcheck`.
// Pure functions over the netmap and the data path, so engine.ts keeps to the state machine.

import type { NetMap } from '../control/netmap.ts';
import { keyFromText } from '../crypto/key-text.ts';
import type { DataPath } from '../datapath/datapath.ts';
import { EngineError, type NetcheckReport, type PeerPath, type PeerSummary, type PingResult } from '../protocol.ts';
import { peerSummaries } from './status.ts';

/** The data path while it runs (passed undefined otherwise); a typed error saying how to get one. */
export function runningDataPath(dp: DataPath | undefined): DataPath {
  if (dp) return dp;
  throw new EngineError(
    'no-data-path',
    'not connected: the data path is not running (trellis up, and a daemon with a TUN)',
  );
}

/** Peer summaries plus, when the data path runs, each peer's path and WireGuard stats. */
export function peersWithPaths(nm: NetMap, dp: DataPath | undefined): PeerSummary[] {
  const peers = peerSummaries(nm);
  if (!dp) return peers;
  return peers.map((p) => {
    const key = nm.peers.get(p.id)?.Key;
    if (typeof key !== 'string') return p;
    try {
      const path = dp.peerPath(keyFromText('nodekey', key));
      const region = path.derpRegion !== undefined ? nm.derpMap.Regions?.[String(path.derpRegion)] : undefined;
      const name = region?.RegionName?.trim();
      const code = region?.RegionCode?.trim();
      const shown: PeerPath = { ...path };
      if (name) shown.derpRegionName = name.slice(0, 64);
      // Printed in quotes by the CLI: only a short code of plain characters from a hostile map.
      if (code && /^[A-Za-z0-9._-]{1,32}$/.test(code)) shown.derpRegionCode = code;
      return { ...p, path: shown };
    } catch {
      return p;
    }
  });
}

/** A disco ping to a peer named by host name, MagicDNS name or tailnet address. */
export async function pingPeer(
  nm: NetMap,
  dp: DataPath,
  o: { target: string; timeoutMs?: number },
): Promise<PingResult> {
  const target = typeof o.target === 'string' ? o.target.trim().replace(/\.$/, '') : '';
  const peer = peerSummaries(nm).find((p) => p.name === target || p.dnsName === target || p.addresses.includes(target));
  const node = peer ? nm.peers.get(peer.id) : undefined;
  if (!peer || typeof node?.Key !== 'string')
    throw new EngineError('no-such-peer', `no peer named ${JSON.stringify(target)}`);
  const timeoutMs = Math.min(Math.max(o.timeoutMs ?? 5000, 100), 30_000);
  const r = await dp.discoPing(keyFromText('nodekey', node.Key), timeoutMs);
  if (!r || r.via === 'none') throw new EngineError('timeout', `no pong from ${peer.name} within ${timeoutMs} ms`);
  return {
    peer: peer.name,
    address: peer.addresses[0] ?? '',
    via: r.via,
    endpoint: r.endpoint,
    derpRegion: r.derpRegion,
    latencyMs: Math.round((r.latencyMs ?? 0) * 10) / 10,
  };
}

export async function netcheck(dp: DataPath): Promise<NetcheckReport> {
  return { ...(await dp.netcheck()), endpoints: dp.localEndpoints() };
}
