// The two descriptions of this node that control receives: Hostinfo, and the MapRequest that carries it
// with our keys and endpoints. Pure builders over what the engine knows.
import { hostname as osHostname, release } from 'node:os';
import { publicText } from '../crypto/key-text.ts';
import { CAPABILITY_VERSION } from './dial.ts';
import { hostFacts } from './host-facts.ts';
import { buildNetInfo, type NetFacts } from './net-info.ts';
import type { Hostinfo, MapRequest } from './tailcfg.ts';

function osName(): string {
  return process.platform === 'darwin' ? 'macOS' : process.platform === 'win32' ? 'windows' : process.platform;
}

/**
 * homeDERP 0 = not chosen yet (no NetInfo sent). routableIPs: what we offer (absent when nothing, as tailscaled).
 * netFacts: the latest netcheck and port-mapping probe, for the rest of NetInfo.
 */
export function buildHostinfo(
  hostname: string,
  homeDERP: number,
  services: Array<{ Proto: string; Port: number }> = [],
  routableIPs: string[] = [],
  netFacts?: NetFacts,
  userspace = false,
): Hostinfo {
  return {
    IPNVersion: '0.1.0-trellis',
    OS: osName(),
    OSVersion: release(),
    Hostname: hostname || osHostname(),
    App: 'trellis',
    ...hostFacts(),
    ...(userspace ? { Userspace: true, UserspaceRouter: true } : {}),
    ...(homeDERP ? { NetInfo: buildNetInfo(homeDERP, netFacts) } : {}),
    ...(services.length > 0 ? { Services: services } : {}),
    ...(routableIPs.length > 0 ? { RoutableIPs: routableIPs } : {}),
  };
}

export function buildMapRequest(o: {
  nodePrivate: Uint8Array;
  discoPrivate: Uint8Array;
  hostinfo: Hostinfo;
  endpoints: string[];
}): MapRequest {
  return {
    Version: CAPABILITY_VERSION,
    KeepAlive: true,
    NodeKey: publicText('nodekey', o.nodePrivate),
    DiscoKey: publicText('discokey', o.discoPrivate),
    Stream: true,
    Hostinfo: o.hostinfo,
    Endpoints: o.endpoints,
    EndpointTypes: o.endpoints.map(() => 1),
  };
}
