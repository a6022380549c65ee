// TAI64N timestamps for handshake initiations (anti-replay). The nanoseconds are truncated to 2^24 ns
// (~16.7 ms), as wireguard-go does, so the timestamp does not leak a fine-grained clock.
const TAI64_BASE = 0x400000000000000an;
const WHITENER_MASK = 0xffffff;

export const TAI64N_LEN = 12;

export function tai64n(nowMs: number = Date.now(), extraNs = 0): Uint8Array {
  const out = new Uint8Array(TAI64N_LEN);
  const view = new DataView(out.buffer);
  const seconds = Math.floor(nowMs / 1000);
  const nanos = ((nowMs - seconds * 1000) * 1_000_000 + extraNs) >>> 0;
  view.setBigUint64(0, TAI64_BASE + BigInt(seconds));
  view.setUint32(8, (nanos & ~WHITENER_MASK) >>> 0);
  return out;
}

/** true when a is strictly after b (both TAI64N, big-endian, so byte order is time order). */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_LEN; i++) {
    if (a[i] !== b[i]) return a[i] > b[i];
  }
  return false;
}
