// The control server's answer to our ts2021 initiation. parseHandshakeResponse (its framing) returns or throws
// NoiseError. One input in 64 (first byte 0x3f) also goes through the whole finish(), which may throw NoiseError or,
// for an ephemeral key that is a low-order point, the CryptoError of the X25519 step (also a deliberate, typed
// refusal); that path costs two X25519s, so it is kept rare to leave the run its 1,000,000 inputs. Bit 6 of the
// first byte puts the rest behind a well-formed header (type 2, length 48), to reach the key agreement.
import { NoiseError, parseHandshakeResponse, startClientHandshake } from '../../../main/engine/control/noise.ts';
import { CryptoError, generateKeyPair } from '../../../main/engine/wg/crypto.ts';
import { allowOnly, check } from '../contract.ts';

const hs = startClientHandshake({
  version: 130,
  machinePrivate: generateKeyPair().privateKey,
  serverPublic: generateKeyPair().publicKey,
});

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  let response: Uint8Array = data.subarray(1);
  if (data[0] & 0x40) {
    response = new Uint8Array(51);
    response.set([2, 0, 48]);
    response.set(data.subarray(1, 49), 3);
  }
  try {
    const r = parseHandshakeResponse(response);
    check(r.serverEphemeral.length === 32 && r.tag.length === 16, 'short ephemeral or tag');
    if ((data[0] & 0x3f) === 0x3f) hs.finish(response);
  } catch (e) {
    allowOnly(e, NoiseError, CryptoError);
  }
}
