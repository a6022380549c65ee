// virtio_net_hdr + packet frames as the TUN hands them over after TUNSETOFFLOAD: split() drops what does not fit
// and never throws. A TUN read is at most 64 KiB + the 10-byte header, which the runner's max_len matches.
import { TsoSplitter } from '../../../main/engine/tun/tso-split.ts';
import { check } from '../contract.ts';

const splitter = new TsoSplitter();

export function fuzz(data: Buffer): void {
  let bytes = 0;
  splitter.split(data, (pkt) => {
    check(pkt.length > 0 && pkt.length <= 65535 + 60, `emitted a packet of ${pkt.length} bytes`);
    bytes += pkt.length;
  });
  check(bytes <= 64 * (data.length + 120), 'more output than the segments could hold');
}
