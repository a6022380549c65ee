// The PeerAPI's request line and headers from a tailnet peer: the Range header of a resumed upload and the file
// name in /v0/put/<name>. parseRangeHeader, decodePutName and invalidNameReason never throw.
import { invalidNameReason } from '../../../main/engine/taildrop/names.ts';
import { decodePutName, parseRangeHeader } from '../../../main/engine/taildrop/peerapi.ts';
import { check } from '../contract.ts';

export function fuzz(data: Buffer): void {
  const text = data.toString('latin1'); // node's HTTP parser hands headers and the URL over as latin1 strings
  const offset = parseRangeHeader(text);
  if (offset !== undefined) check(Number.isSafeInteger(offset) && offset >= 0, `bad offset ${offset}`);
  const name = decodePutName(`/v0/put/${text}`);
  if (name === undefined) return;
  const why = invalidNameReason(name);
  if (why === undefined) {
    check(!/[/\\]/.test(name) && name !== '.' && name !== '..' && name.length > 0, `accepted ${JSON.stringify(name)}`);
  }
  invalidNameReason(data.toString('utf8'));
}
