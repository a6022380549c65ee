// virtio_net_hdr + packet frames as the TUN hands them over after TUNSETOFFLOAD: split() drops what does not fit
// and never throws. A TUN read is at most 64 KiB + the 10-byte header, which the runner's max_len matches.
import { TsoSplitter } from '../../../main/engine/tun/tso-split.ts';
import { check } from '../contract.ts';

const splitter = new TsoSplitter();

export function fuzz(data: Buffer): void {
  let segments = 0;
  splitter.split(data, (pkt) => {
    check(pkt.length > 0 && pkt.length <= 65535 + 60, `emitted a packet of ${pkt.length} bytes`);
    segments++;
  });
  // Every segment but a lone first one carries at least one payload byte of the frame. (Many segments from a small
  // frame are what a tiny gso_size asks for, not a fault: the kernel's MSS floor keeps them in proportion.)
  check(segments <= Math.max(1, data.length), `${segments} segments from a ${data.length}-byte frame`);
}
