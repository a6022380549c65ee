// virtio_net_hdr + packet frames as the TUN hands them over after TUNSETOFFLOAD, through the addon's splitter
// (native/src/tun_offload.cc, reached by its test entry splitForTest): it drops what does not fit and never
// crashes. A TUN read is at most 64 KiB + the 10-byte header, which the runner's max_len matches.
// Jazzer cannot see coverage inside the addon, so every input is tried twice: as it comes, and "repaired" (the
// header's GSO type, checksum start and offset made to agree with the packet under it, the fuzzer's gso_size and
// bytes kept) so random bytes reach the cutting code and not only the checks in front of it. Whatever the splitter
// accepts as a super-packet must come out as valid segments carrying exactly its payload. One input in 32 also
// goes through the device's batch reader, several times over, so super-packets straddle batches.
import { loadNativeAddon } from '../../../main/engine/tun/native.ts';
import { check } from '../contract.ts';

const addon = loadNativeAddon();

function sum16(b: Uint8Array, from: number, to: number, start = 0): number {
  let s = start;
  for (let i = from; i < to; i += 2) s += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The repaired copy, or undefined when the packet is too short to say what it is. */
function repair(data: Buffer): Buffer | undefined {
  if (data.length < 10 + 40) return undefined;
  const f = Buffer.from(data);
  const version = f[10] >> 4;
  const l4 = version === 6 ? 40 : (f[10] & 15) * 4;
  f[0] = 1; // NEEDS_CSUM
  f[1] = f[1] & 1 ? (version === 6 ? 4 : 1) : 0; // TCPV6 / TCPV4, or no GSO (a partial checksum to finish)
  f.writeUInt16LE(Math.max(1, f.readUInt16LE(4)), 4);
  f.writeUInt16LE(l4, 6);
  f.writeUInt16LE(f[1] === 0 && f[9] & 1 ? 6 : 16, 8);
  return f;
}

/**
 * Distinct branches per outcome, for the fuzzer's feedback (the native code gives none): dropped or passed, by the
 * header's flags and GSO type; split, by family and segment count.
 */
let outcomes = 0;
function note(frame: Buffer, dropped: boolean, segments: number): void {
  if (frame.length < 10) outcomes += 1;
  else if (dropped) {
    if (frame[1] === 0) outcomes += frame[0] & 1 ? 2 : 3;
    else if (frame[1] === 1) outcomes += 4;
    else if (frame[1] === 4) outcomes += 5;
    else outcomes += 6;
  } else if (segments === 0) outcomes += frame[0] & 1 ? 7 : 8;
  else if (segments === 1) outcomes += frame[1] === 1 ? 9 : 10;
  else if (segments < 4) outcomes += 11;
  else if (segments < 16) outcomes += 12;
  else if (segments < 64) outcomes += 13;
  else if (segments < 256) outcomes += 14;
  else if (segments < 1024) outcomes += 15;
  else outcomes += 16;
}

function checkSplit(frame: Buffer): void {
  const r = addon.splitForTest(frame);
  note(frame, r.dropped > 0, r.segments);
  check(r.dropped + (r.packets.length > 0 ? 1 : 0) === 1, 'a frame is either dropped or gives packets');
  check(r.segments === (r.superPackets === 1 ? r.packets.length : 0), 'segments counted');
  for (const p of r.packets) check(p.length > 0 && p.length <= 65535 + 60, `a packet of ${p.length} bytes`);
  if (r.superPackets !== 1) return;
  // A super-packet: every segment repeats the headers, carries valid checksums and its share of the payload.
  const pkt = frame.subarray(10);
  const v6 = pkt[0] >> 4 === 6;
  const l4 = frame.readUInt16LE(6);
  const hdr = l4 + (pkt[l4 + 12] >> 4) * 4;
  check(r.packets.length <= 4096, `${r.packets.length} segments`);
  let off = hdr;
  for (const [i, s] of r.packets.entries()) {
    check(s.length >= hdr && s.subarray(hdr).equals(pkt.subarray(off, off + s.length - hdr)), `payload of ${i}`);
    off += s.length - hdr;
    if (!v6) check(sum16(s, 0, l4) === 0xffff, `IPv4 header checksum of ${i}`);
    const pseudo = (v6 ? sum16(s, 8, 40) : sum16(s, 12, 20)) + 6 + (s.length - l4);
    check(sum16(s, l4, s.length, pseudo) === 0xffff, `TCP checksum of ${i}`);
    const flags = s[l4 + 13];
    const last = i === r.packets.length - 1;
    check(last || (flags & 0x09) === 0, `FIN/PSH only on the last segment (${i})`);
    check(i === 0 || (flags & 0x80) === 0, `CWR only on the first segment (${i})`);
    check(last || i === 0 || flags === (r.packets[1] as Buffer)[l4 + 13], 'middle segments share their flags');
  }
  check(off === pkt.length, 'the whole payload, once');
}

export function fuzz(data: Buffer): void {
  checkSplit(data);
  const fixed = repair(data);
  if (fixed) checkSplit(fixed);
  if (data.length > 0 && data[data.length - 1] % 32 === 0) {
    const frames = [data, fixed ?? data, fixed ?? data, data, fixed ?? data, fixed ?? data];
    const want = frames.reduce((n, f) => n + addon.splitForTest(f).packets.length, 0);
    const got = addon.batchesForTest(frames);
    check(got.reduce((n, b) => n + b.length, 0) === want, 'the batch reader gives what the splitter gives');
    for (const b of got) check(b.length <= 256, 'a batch within TUN_MAX_BATCH');
  }
  check(outcomes >= 0, 'outcomes counted');
}
