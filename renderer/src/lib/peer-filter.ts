// Search over the device list: every whitespace-separated word must match some field (or what the device offers),
// case-insensitively; the toolbar's filters; and the list's order.
import type { PeerView } from '../../../preload/api.ts';
import { offerWords, routeHolds } from '../../../preload/routes.ts';

/** The toolbar's filters (kept in the store). */
export interface PeerFilters {
  online: boolean;
  canReceive: boolean;
}

export function matchesPeer(p: PeerView, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  // What a device offers is found too: "exit" finds exit nodes, a route's CIDR or an address inside it its router.
  const hay = [p.name, p.dnsName, p.os, p.user, ...p.addresses, offerWords(p)].join(' ').toLowerCase();
  return words.every((w) => hay.includes(w) || routeHolds(p, w));
}

export function passesFilters(p: PeerView, f: PeerFilters): boolean {
  if (f.online && p.online !== true) return false;
  if (f.canReceive && !(p.fileTarget && !p.expired && p.online !== false)) return false;
  return true;
}

// Numbers inside names compare as numbers: node-18 before node-178.
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

export function compareNames(a: string, b: string): number {
  return collator.compare(a, b);
}

/** Online first, then by name, so the devices one can reach are on top. */
export function sortPeers(peers: readonly PeerView[]): PeerView[] {
  return [...peers].sort((a, b) => {
    const ao = a.online === true ? 0 : 1;
    const bo = b.online === true ? 0 : 1;
    return ao - bo || compareNames(a.name, b.name);
  });
}
