// ICMP and ICMPv6 echo: a request to one of our addresses gets a reply with the same identifier, sequence and data.

import { internetChecksum } from '../packet/checksum.ts';
import { IPPROTO } from '../packet/parse.ts';
import { fillTransportChecksum, transportChecksumOk, writeIpHeader } from './segment.ts';

const ECHO_REQUEST = { 4: 8, 6: 128 } as const;
const ECHO_REPLY = { 4: 0, 6: 129 } as const;

/** The reply packet for an echo request, or a drop reason (string) for anything else. */
export function echoReply(t: Uint8Array, src: Uint8Array, dst: Uint8Array): Uint8Array | string {
  const v = src.length === 4 ? 4 : 6;
  const proto = v === 4 ? IPPROTO.ICMP : IPPROTO.ICMPV6;
  if (t.length < 8) return 'short-icmp';
  const ok = v === 4 ? internetChecksum(t) === 0 : transportChecksumOk(t, src, dst, proto);
  if (!ok) return 'bad-checksum';
  if (t[0] !== ECHO_REQUEST[v] || t[1] !== 0) return 'icmp-not-echo';
  const ipLen = v === 4 ? 20 : 40;
  const out = new Uint8Array(ipLen + t.length);
  writeIpHeader(out, dst, src, proto, t.length);
  const r = out.subarray(ipLen);
  r.set(t);
  r[0] = ECHO_REPLY[v];
  fillTransportChecksum(r, 2, dst, src, proto);
  return out;
}
