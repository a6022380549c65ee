// Test helpers for the userspace stack: a seeded PRNG, a simulated link between two stacks with injectable loss,
// reordering, duplication, corruption and delay (all on a ManualClock), and a driver that alternates between
// letting Node streams run and moving the clock.
import { createHash } from 'node:crypto';
import { ManualClock } from '../../main/engine/netstack/clock.ts';
import { NetStack, type NetStackOptions } from '../../main/engine/netstack/stack.ts';

/** mulberry32: small, fast, seeded; good enough to drive impairments reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Impairment {
  loss?: number;
  duplicate?: number;
  corrupt?: number;
  /** Probability that a packet gets extra delay (up to jitterMs), so later packets overtake it. */
  reorder?: number;
  delayMs?: number;
  jitterMs?: number;
}

export interface LinkCounters {
  sent: number;
  lost: number;
  duplicated: number;
  corrupted: number;
  reordered: number;
}

/** One direction's filter: return false to drop a packet (for targeted tests). */
export type PacketFilter = (packet: Uint8Array, from: 'a' | 'b') => boolean;

export class SimLink {
  readonly counters: LinkCounters = { sent: 0, lost: 0, duplicated: 0, corrupted: 0, reordered: 0 };
  filter: PacketFilter | undefined;
  /** Every packet offered to the link, for tests that look at what a stack sent. */
  readonly log: { from: 'a' | 'b'; at: number; packet: Uint8Array }[] = [];
  logging = false;

  constructor(
    readonly clock: ManualClock,
    private readonly rand: () => number,
    public impairment: Impairment = {},
  ) {}

  /**
   * Hand packets over in one shared Buffer that is scribbled over right after deliver() returns, as the TUN and
   * WireGuard read loops do: catches a stack that keeps references to input bytes.
   */
  reuseBuffers = false;
  private readonly shared = Buffer.alloc(65536);

  private hand(stack: NetStack, p: Uint8Array): void {
    if (!this.reuseBuffers) {
      stack.deliver(p);
      return;
    }
    const view = this.shared.subarray(0, p.length);
    view.set(p);
    stack.deliver(view);
    view.fill(0xaa);
  }

  /** Copy each packet when it is sent: what a stack with outputCopies (a reused output buffer) needs. */
  copyPackets = false;

  send(sent: Uint8Array, from: 'a' | 'b', to: () => NetStack): void {
    const packet = this.copyPackets ? sent.slice() : sent;
    this.counters.sent++;
    if (this.logging) this.log.push({ from, at: this.clock.now(), packet });
    if (this.filter && !this.filter(packet, from)) return;
    const imp = this.impairment;
    if (this.rand() < (imp.loss ?? 0)) {
      this.counters.lost++;
      return;
    }
    const copies = this.rand() < (imp.duplicate ?? 0) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let i = 0; i < copies; i++) {
      let p = packet;
      if (this.rand() < (imp.corrupt ?? 0)) {
        p = Uint8Array.from(packet);
        p[Math.floor(this.rand() * p.length)] ^= 1 << Math.floor(this.rand() * 8);
        this.counters.corrupted++;
      }
      let delay = imp.delayMs ?? 1;
      if (this.rand() < (imp.reorder ?? 0)) {
        delay += this.rand() * (imp.jitterMs ?? 5);
        this.counters.reordered++;
      }
      this.clock.setTimer(() => this.hand(to(), p), delay);
    }
  }
}

export interface Pair {
  clock: ManualClock;
  link: SimLink;
  a: NetStack;
  b: NetStack;
}

export const V4 = { a: '100.64.0.1', b: '100.64.0.2' };
export const V6 = { a: 'fd7a:115c:a1e0::1', b: 'fd7a:115c:a1e0::2' };

/** Two stacks wired back to back through a SimLink on one ManualClock. */
export function makePair(
  seed: number,
  impairment: Impairment = {},
  opts: Partial<Omit<NetStackOptions, 'output' | 'addresses' | 'clock'>> = {},
): Pair {
  const clock = new ManualClock();
  const rand = prng(seed);
  const link = new SimLink(clock, rand, impairment);
  const rnd32 = () => Math.floor(rand() * 4294967296) >>> 0;
  const pair = { clock, link } as Pair;
  pair.a = new NetStack({
    ...opts,
    addresses: [V4.a, V6.a],
    clock,
    random32: rnd32,
    output: (p) => link.send(p, 'a', () => pair.b),
  });
  pair.b = new NetStack({
    ...opts,
    addresses: [V4.b, V6.b],
    clock,
    random32: rnd32,
    output: (p) => link.send(p, 'b', () => pair.a),
  });
  return pair;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/**
 * Alternates between Node's stream machinery and the clock until `done()` holds or `maxSimMs` of simulated time
 * (or `maxRounds` loop turns) pass. Returns the simulated time used. Throws when the bound is hit.
 */
export async function runUntil(
  clock: ManualClock,
  done: () => boolean,
  maxSimMs = 600_000,
  maxRounds = 2_000_000,
): Promise<number> {
  const start = clock.now();
  for (let round = 0; round < maxRounds; round++) {
    await tick();
    if (done()) return clock.now() - start;
    if (clock.now() - start > maxSimMs) break;
    const next = clock.nextAt();
    const step = Number.isFinite(next) ? Math.min(1000, Math.max(0, next - clock.now())) : 1000;
    clock.advance(step);
  }
  throw new Error(`not done after ${clock.now() - start} ms of simulated time`);
}

/** Deterministic bytes from a seed. */
export function seededBytes(seed: number, length: number): Uint8Array {
  const r = prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 4) {
    const v = Math.floor(r() * 4294967296);
    out[i] = v & 0xff;
    if (i + 1 < length) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < length) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < length) out[i + 3] = (v >>> 24) & 0xff;
  }
  return out;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Collects a readable's bytes; `done` flips when it ends. */
export function collect(stream: NodeJS.ReadableStream): { chunks: Buffer[]; done: boolean; bytes: () => Buffer } {
  const c = { chunks: [] as Buffer[], done: false, bytes: () => Buffer.concat(c.chunks) };
  stream.on('data', (d: Buffer) => c.chunks.push(d));
  stream.on('end', () => {
    c.done = true;
  });
  return c;
}

/** Two stacks on the real clock, joined by a lossless link that delivers in batches on setImmediate. */
export function makeLivePair(opts: Partial<Omit<NetStackOptions, 'output' | 'addresses'>> = {}): {
  a: NetStack;
  b: NetStack;
} {
  const queue: { to: 'a' | 'b'; p: Uint8Array }[] = [];
  let scheduled = false;
  const pair = {} as { a: NetStack; b: NetStack };
  const flush = () => {
    scheduled = false;
    const batch = queue.splice(0, queue.length);
    for (const { to, p } of batch) pair[to].deliver(p);
  };
  const send = (to: 'a' | 'b', p: Uint8Array) => {
    queue.push({ to, p });
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  pair.a = new NetStack({ ...opts, addresses: [V4.a, V6.a], output: (p) => send('b', p) });
  pair.b = new NetStack({ ...opts, addresses: [V4.b, V6.b], output: (p) => send('a', p) });
  return pair;
}
