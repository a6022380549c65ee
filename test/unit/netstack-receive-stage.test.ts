// ReceiveStage: received bytes are copied out of the packet at once, pushed once per turn in order (two
// connections interleaved in one batch included), counted while staged, and small runs never pin a shared slab.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReceiveStage } from '../../main/engine/netstack/receive-stage.ts';

function staged(): { stage: ReceiveStage; pushed: Buffer[]; alive: { v: boolean } } {
  const pushed: Buffer[] = [];
  const alive = { v: true };
  const stage = new ReceiveStage(
    (b) => pushed.push(b),
    () => alive.v,
  );
  return { stage, pushed, alive };
}

/** The end of this turn of the event loop, when staged bytes are pushed. */
const turn = () => new Promise<void>((r) => setImmediate(r));

const bytes = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

test('a batch of segments becomes one push at the end of the turn, copied out of the packet buffer', async () => {
  const { stage, pushed } = staged();
  const packet = new Uint8Array(1400);
  for (let i = 0; i < 20; i++) {
    packet.fill(i);
    stage.add(packet);
  }
  packet.fill(0xee); // the data path reuses its buffer
  assert.equal(pushed.length, 0);
  assert.equal(stage.staged, 20 * 1400);
  await turn();
  assert.equal(pushed.length, 1);
  assert.equal(stage.staged, 0);
  const got = pushed[0];
  assert.equal(got.length, 20 * 1400);
  for (let i = 0; i < 20; i++) assert.equal(got[i * 1400 + 700], i);
});

test('two connections interleaved in one turn each get their bytes in order', async () => {
  const a = staged();
  const b = staged();
  for (let i = 0; i < 30; i++) {
    a.stage.add(bytes(1000, i));
    b.stage.add(bytes(700, 100 + i));
  }
  await turn();
  const all = (p: Buffer[]) => Buffer.concat(p);
  const ga = all(a.pushed);
  const gb = all(b.pushed);
  assert.equal(ga.length, 30_000);
  assert.equal(gb.length, 21_000);
  for (let i = 0; i < 30; i++) {
    assert.ok(ga.subarray(i * 1000, (i + 1) * 1000).every((x) => x === i));
    assert.ok(gb.subarray(i * 700, (i + 1) * 700).every((x) => x === 100 + i));
  }
});

test('a small run gets a buffer of its own; a large one may be a view; flush before the end keeps order', async () => {
  const { stage, pushed } = staged();
  stage.add(bytes(100, 1));
  await turn();
  assert.equal(pushed[0].length, 100);
  assert.equal(pushed[0].buffer.byteLength, 100, 'a tiny run does not pin a shared slab');
  for (let i = 0; i < 16; i++) stage.add(bytes(1400, 2));
  stage.add(bytes(50, 3));
  stage.flush(); // what onEnd does before the stream's end
  assert.equal(pushed.length, 2);
  assert.equal(pushed[1].length, 16 * 1400 + 50);
  assert.equal(pushed[1][16 * 1400], 3);
  await turn();
  assert.equal(pushed.length, 2, 'nothing left for the batch-end flush');
  // Runs larger than a quarter slab go on their own, after what was staged before them.
  stage.add(bytes(10, 4));
  stage.add(bytes(40_000, 5));
  await turn();
  assert.deepEqual(
    pushed.slice(2).map((p) => [p.length, p[0]]),
    [
      [10, 4],
      [40_000, 5],
    ],
  );
});

test('bytes staged for a stream that is gone are dropped, not pushed', async () => {
  const { stage, pushed, alive } = staged();
  stage.add(bytes(5000, 1));
  alive.v = false;
  await turn();
  assert.equal(pushed.length, 0);
  stage.add(bytes(300, 1));
  stage.clear();
  assert.equal(stage.staged, 0);
  await turn();
  assert.equal(pushed.length, 0);
});

test('a stream that reaches the end of the slab keeps pushing large runs, in order', async () => {
  // 1240-byte segments do not divide the slab: a run meets its end mid-segment on every pass. Pushing the short run
  // there once made the next turn start at the same spot, so every later push was 4 segments long.
  const { stage, pushed } = staged();
  const SEG = 1240;
  const PER_TURN = 50;
  let sent = 0;
  for (let t = 0; t < 40; t++) {
    for (let i = 0; i < PER_TURN; i++) stage.add(bytes(SEG, sent++ & 0xff));
    await turn();
  }
  const all = Buffer.concat(pushed);
  assert.equal(all.length, sent * SEG);
  for (let k = 0; k < sent; k++) assert.equal(all[k * SEG + SEG - 1], k & 0xff, `segment ${k} in place`);
  // One push a turn, plus one where a pass over the slab ends mid-turn (the rest of that turn may then be short).
  const passes = Math.ceil((sent * SEG) / (128 * 1024));
  assert.ok(pushed.length <= 40 + passes, `${pushed.length} pushes for 40 turns`);
  const short = pushed.filter((b) => b.length < 8 * SEG).length;
  assert.ok(short <= passes, `${short} pushes shorter than 8 segments in ${passes} passes over the slab`);
});
