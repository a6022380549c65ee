// Subnets a user asks this node to advertise: validated and written one way (the canonical form control and
// tailscale print), so that prefs, Hostinfo and status compare equal.
import { formatAddress, parseAddress } from '../packet/ip.ts';

export class RouteError extends Error {
  override readonly name = 'RouteError';
}

export const DEFAULT_ROUTE_V4 = '0.0.0.0/0';
export const DEFAULT_ROUTE_V6 = '::/0';

/** "10.1.0.0/16" → itself; IPv6 compressed; a bare address, a bad length or host bits set → RouteError. */
export function canonicalCIDR(text: string): string {
  const t = String(text).trim();
  const slash = t.indexOf('/');
  if (slash < 0) throw new RouteError(`${JSON.stringify(t)} is not a CIDR prefix (like 192.168.1.0/24)`);
  let address: Uint8Array;
  try {
    address = parseAddress(t.slice(0, slash));
  } catch {
    throw new RouteError(`${JSON.stringify(t)} does not start with an IP address`);
  }
  const lenText = t.slice(slash + 1);
  const bits = Number(lenText);
  const max = address.length * 8;
  if (!/^\d{1,3}$/.test(lenText) || bits > max) {
    throw new RouteError(`${JSON.stringify(t)} has a bad prefix length (0 to ${max})`);
  }
  const masked = Uint8Array.from(address);
  for (let i = bits; i < max; i++) masked[i >> 3] &= ~(0x80 >> (i & 7));
  const canonical = `${formatAddress(masked)}/${bits}`;
  if (masked.some((b, i) => b !== address[i])) {
    throw new RouteError(`${t} has host bits set; the prefix is ${canonical}`);
  }
  return canonical;
}

/**
 * The subnets to advertise, canonical, sorted and without repeats. The default routes are not subnets: offering
 * them is "advertise exit node" (tailscale refuses them here too unless both come together).
 */
export function parseAdvertiseRoutes(list: readonly string[]): string[] {
  const out = new Set<string>();
  for (const item of list) {
    if (String(item).trim() === '') continue;
    const c = canonicalCIDR(item);
    if (c === DEFAULT_ROUTE_V4 || c === DEFAULT_ROUTE_V6) {
      throw new RouteError(`${c} is the default route: use advertise exit node instead`);
    }
    out.add(c);
  }
  return [...out].sort();
}
