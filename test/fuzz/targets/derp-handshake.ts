// A DERP server's side of the connection setup: the HTTP upgrade answer (cut into reads at fuzzer-chosen points)
// and the ServerInfo JSON. UpgradeReader and parseServerInfo (what openServerInfo does once the box is open: no
// X25519 per input) return or throw DerpError. The first byte picks the mode: even, the body is the upgrade
// answer; odd, the body is ServerInfo's plaintext.
import { DerpError } from '../../../main/engine/derp/errors.ts';
import { parseServerInfo, UpgradeReader } from '../../../main/engine/derp/handshake.ts';
import { allowOnly, Bytes, check } from '../contract.ts';

export function fuzz(data: Buffer): void {
  const b = new Bytes(data);
  const mode = b.u8();
  try {
    if (mode & 1) {
      const info = parseServerInfo(b.rest());
      check(info.version >= 0 && info.tokenBucketBytesPerSecond >= 0, 'negative ServerInfo numbers');
      return;
    }
    const r = new UpgradeReader();
    const cuts = (mode >> 1) & 7;
    for (let i = 0; i <= cuts && b.left > 0; i++) {
      const rest = r.push(i === cuts ? b.rest() : b.take(1 + b.u8()));
      if (rest !== null) {
        check(r.serverKeyHex === '' || /^[0-9a-f]{64}$/.test(r.serverKeyHex), 'server key is not 64 hex digits');
        return;
      }
    }
  } catch (e) {
    allowOnly(e, DerpError);
  }
}
