// The DERP byte stream from a relay server, cut into reads at fuzzer-chosen points: FrameParser returns frames or
// throws DerpFrameError — but not the one it makes out of an unexpected exception ("frame parse failed: …"), its
// safety net, which is a finding here.
import { DerpFrameError, FrameParser } from '../../../main/engine/derp/frames.ts';
import { allowOnly, Bytes } from '../contract.ts';

export function fuzz(data: Buffer): void {
  const b = new Bytes(data);
  const cuts = b.u8() & 7;
  const parser = new FrameParser(b.u8() & 1 ? 4096 : undefined);
  try {
    for (let i = 0; i <= cuts && b.left > 0; i++) {
      parser.push(i === cuts ? b.rest() : b.take(1 + b.u8()));
      while (parser.next() !== null) {}
    }
  } catch (e) {
    if (e instanceof DerpFrameError && e.message.startsWith('frame parse failed:')) throw e;
    allowOnly(e, DerpFrameError);
  }
}
