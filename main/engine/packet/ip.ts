// Minimal IP header access for the data path: version, addresses and the length that strips padding.
import { isIP } from 'node:net';

export class AddressError extends Error {
  override readonly name = 'AddressError';
}

export const IPV4_HEADER_MIN = 20;
export const IPV6_HEADER_LEN = 40;

/** IP version nibble (4 or 6), or 0 when the packet is too short or of another version. */
export function ipVersion(packet: Uint8Array): 0 | 4 | 6 {
  if (packet.length < IPV4_HEADER_MIN) return 0;
  const v = packet[0] >> 4;
  if (v === 4) return 4;
  if (v === 6 && packet.length >= IPV6_HEADER_LEN) return 6;
  return 0;
}

/** Total length claimed by the header, or -1 if it is inconsistent with the buffer. */
export function ipTotalLength(packet: Uint8Array, version: 4 | 6): number {
  const len = version === 4 ? (packet[2] << 8) | packet[3] : ((packet[4] << 8) | packet[5]) + IPV6_HEADER_LEN;
  if (version === 4 && len < IPV4_HEADER_MIN) return -1;
  return len <= packet.length ? len : -1;
}

export const SRC_OFFSET = { 4: 12, 6: 8 } as const;
export const DST_OFFSET = { 4: 16, 6: 24 } as const;

/** Parses a textual IPv4/IPv6 address to bytes. */
export function parseAddress(text: string): Uint8Array {
  const kind = isIP(text);
  if (kind === 4) return Uint8Array.from(text.split('.').map(Number));
  if (kind === 6) return parseIPv6(text);
  throw new AddressError(`not an IP address: ${JSON.stringify(text)}`);
}

function parseIPv6(text: string): Uint8Array {
  let t = text;
  const tail: number[] = [];
  const lastColon = t.lastIndexOf(':');
  if (t.slice(lastColon + 1).includes('.')) {
    tail.push(...parseAddress(t.slice(lastColon + 1)));
    t = `${t.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = t.includes('::') ? t.split('::') : [t, undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill('0'), ...r];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail.length) out.set(tail, 12);
  return out;
}

export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLen).join(':')}`;
}

/** Parses "a.b.c.d/n" or "x::/n" (a bare address means a host prefix). */
export function parsePrefix(text: string): { address: Uint8Array; bits: number } {
  const slash = text.indexOf('/');
  const address = parseAddress(slash < 0 ? text : text.slice(0, slash));
  const max = address.length * 8;
  const bits = slash < 0 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (slash >= 0 && !/^\d+$/.test(text.slice(slash + 1)))) {
    throw new AddressError(`bad prefix length in ${JSON.stringify(text)}`);
  }
  // Clear host bits so the prefix is canonical.
  for (let i = bits; i < max; i++) address[i >> 3] &= ~(0x80 >> (i & 7));
  return { address, bits };
}
