// STUN binding responses from the network (netcheck, the shared magicsock socket): parseBindingResponse returns a
// response or undefined and never throws.
import { looksLikeStun, parseBindingResponse } from '../../../main/engine/stun/stun.ts';
import { check } from '../contract.ts';

export function fuzz(data: Buffer): void {
  const r = parseBindingResponse(data);
  if (r) {
    check(looksLikeStun(data), 'a response that does not look like STUN');
    check(r.txID.length === 12 && r.port >= 0 && r.port <= 0xffff, 'bad txID or port');
  }
}
