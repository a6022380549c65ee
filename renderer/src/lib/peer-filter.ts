// Search over the device list: every whitespace-separated word must match some field, case-insensitively.
import type { PeerView } from '../../../preload/api.ts';

export function matchesPeer(p: PeerView, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const hay = [p.name, p.dnsName, p.os, p.user, ...p.addresses].join(' ').toLowerCase();
  return words.every((w) => hay.includes(w));
}

/** Online first, then by name, so the devices one can reach are on top. */
export function sortPeers(peers: readonly PeerView[]): PeerView[] {
  return [...peers].sort((a, b) => {
    const ao = a.online === true ? 0 : 1;
    const bo = b.online === true ? 0 : 1;
    return ao - bo || a.name.localeCompare(b.name);
  });
}
