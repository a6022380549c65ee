// The PeerAPI's request line and headers from a tailnet peer: the Range header of a resumed upload and the file
// name in /v0/put/<name>. parseRangeHeader and invalidNameReason never throw. The path decoding is two lines
// inside PeerApi.serve (not exported), written out here as it is there: decodeURIComponent may throw URIError,
// which serve answers with 400.
import { invalidNameReason } from '../../../main/engine/taildrop/names.ts';
import { parseRangeHeader } from '../../../main/engine/taildrop/peerapi.ts';
import { check } from '../contract.ts';

export function fuzz(data: Buffer): void {
  const text = data.toString('latin1'); // node's HTTP parser hands headers and the URL over as latin1 strings
  const offset = parseRangeHeader(text);
  if (offset !== undefined) check(Number.isSafeInteger(offset) && offset >= 0, `bad offset ${offset}`);
  let name: string;
  try {
    name = decodeURIComponent(text.split('?')[0] ?? '');
  } catch (e) {
    if (e instanceof URIError) return;
    throw e;
  }
  const why = invalidNameReason(name);
  if (why === undefined) {
    check(!/[/\\]/.test(name) && name !== '.' && name !== '..' && name.length > 0, `accepted ${JSON.stringify(name)}`);
  }
  invalidNameReason(data.toString('utf8'));
}
