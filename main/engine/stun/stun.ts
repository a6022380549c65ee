// STUN binding requests in the form Tailscale's STUN servers answer (SOFTWARE "tailnode", FINGERPRINT
// last), and response parsing (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS). Pure: bytes in, values out.
import { randomBytes } from 'node:crypto';
import { crc32 } from '../packet/crc32.ts';
import { formatAddress } from '../packet/ip.ts';

export const STUN_MAGIC_COOKIE = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const ATTR_SOFTWARE = 0x8022;
const ATTR_FINGERPRINT = 0x8028;
const ATTR_XOR_MAPPED = 0x0020;
const ATTR_XOR_MAPPED_ALT = 0x8020;
const ATTR_MAPPED = 0x0001;
const FINGERPRINT_XOR = 0x5354554e;
const SOFTWARE = new TextEncoder().encode('tailnode');
export const STUN_REQUEST_LEN = 40;
export const STUN_TXID_LEN = 12;

export function newTxID(): Uint8Array {
  return new Uint8Array(randomBytes(STUN_TXID_LEN));
}

export function bindingRequest(txID: Uint8Array): Uint8Array {
  if (txID.length !== STUN_TXID_LEN) throw new RangeError('a STUN transaction ID is 12 bytes');
  const b = new Uint8Array(STUN_REQUEST_LEN);
  const v = new DataView(b.buffer);
  v.setUint16(0, BINDING_REQUEST);
  v.setUint16(2, STUN_REQUEST_LEN - 20);
  v.setUint32(4, STUN_MAGIC_COOKIE);
  b.set(txID, 8);
  v.setUint16(20, ATTR_SOFTWARE);
  v.setUint16(22, SOFTWARE.length);
  b.set(SOFTWARE, 24);
  v.setUint16(32, ATTR_FINGERPRINT);
  v.setUint16(34, 4);
  v.setUint32(36, (crc32(b.subarray(0, 32)) ^ FINGERPRINT_XOR) >>> 0);
  return b;
}

/** Cheap test for the shared-socket demultiplexer: could this datagram be a STUN message at all? */
export function looksLikeStun(b: Uint8Array): boolean {
  return b.length >= 20 && (b[0] & 0xc0) === 0 && b[4] === 0x21 && b[5] === 0x12 && b[6] === 0xa4 && b[7] === 0x42;
}

export interface StunResponse {
  txID: Uint8Array;
  /** Our address as the server saw it. */
  address: string;
  port: number;
}

/** Parses a binding success response; undefined for anything else (forged or malformed replies included). */
export function parseBindingResponse(b: Uint8Array): StunResponse | undefined {
  if (!looksLikeStun(b)) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint16(0) !== BINDING_SUCCESS) return undefined;
  const len = v.getUint16(2);
  if (20 + len > b.length) return undefined;
  const txID = b.slice(8, 20);
  let mapped: { address: string; port: number } | undefined;
  let xorMapped: { address: string; port: number } | undefined;
  for (let off = 20, guard = 0; off + 4 <= 20 + len && guard < 64; guard++) {
    const type = v.getUint16(off);
    const alen = v.getUint16(off + 2);
    const value = off + 4;
    if (value + alen > 20 + len) return undefined;
    if (type === ATTR_XOR_MAPPED || type === ATTR_XOR_MAPPED_ALT) xorMapped ??= addressAttr(b, value, alen, txID, true);
    else if (type === ATTR_MAPPED) mapped ??= addressAttr(b, value, alen, txID, false);
    off = value + ((alen + 3) & ~3);
  }
  const a = xorMapped ?? mapped;
  return a ? { txID, ...a } : undefined;
}

function addressAttr(
  b: Uint8Array,
  at: number,
  len: number,
  txID: Uint8Array,
  xor: boolean,
): { address: string; port: number } | undefined {
  const family = b[at + 1];
  const size = family === 1 ? 4 : family === 2 ? 16 : 0;
  if (size === 0 || len < 4 + size) return undefined;
  let port = (b[at + 2] << 8) | b[at + 3];
  const addr = b.slice(at + 4, at + 4 + size);
  if (xor) {
    port ^= 0x2112;
    const key = new Uint8Array(16);
    new DataView(key.buffer).setUint32(0, STUN_MAGIC_COOKIE);
    key.set(txID, 4);
    for (let i = 0; i < size; i++) addr[i] ^= key[i];
  }
  // An IPv4-mapped IPv6 address is reported as IPv4.
  const mappedV4 = size === 16 && addr.subarray(0, 10).every((x) => x === 0) && addr[10] === 0xff && addr[11] === 0xff;
  return { address: formatAddress(mappedV4 ? addr.subarray(12) : addr), port };
}
