// The cryptokey routing table against a brute-force longest-prefix match, with lookups repeated (the IPv4 cache
// answers those) between inserts and removals (which must empty it).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { AllowedIPs, type Prefix } from '../../main/engine/wg/allowedips.ts';

function matches(p: Prefix, addr: Uint8Array): boolean {
  for (let i = 0; i < p.bits; i++) {
    const bit = (b: Uint8Array) => (b[i >> 3] >> (7 - (i & 7))) & 1;
    if (bit(p.address) !== bit(addr)) return false;
  }
  return true;
}

function reference(table: Array<{ p: Prefix; v: string }>, addr: Uint8Array): string | undefined {
  let best: { p: Prefix; v: string } | undefined;
  for (const e of table) {
    if (e.p.address.length !== addr.length || !matches(e.p, addr)) continue;
    // A later insert of the same prefix replaces the earlier one, as in the trie.
    if (!best || e.p.bits >= best.p.bits) best = e;
  }
  return best?.v;
}

test('lookups agree with a brute-force longest match through inserts, repeats and removals', () => {
  const t = new AllowedIPs<string>();
  let table: Array<{ p: Prefix; v: string }> = [];
  // A small address space so prefixes overlap and cache slots collide.
  const addr4 = () => new Uint8Array([10, randomBytes(1)[0] & 3, randomBytes(1)[0] & 7, randomBytes(1)[0]]);
  for (let round = 0; round < 300; round++) {
    const r = randomBytes(1)[0];
    if (r < 150) {
      const p = { address: addr4(), bits: 8 + (randomBytes(1)[0] % 25) };
      const v = `peer${randomBytes(1)[0] % 6}`;
      table = table.filter((e) => !(e.p.bits === p.bits && matches(e.p, p.address) && matches(p, e.p.address)));
      table.push({ p, v });
      t.insert(p, v);
    } else if (r < 170) {
      const v = `peer${randomBytes(1)[0] % 6}`;
      table = table.filter((e) => e.v !== v);
      t.removeValue(v);
    }
    for (let i = 0; i < 20; i++) {
      const a = addr4();
      const packet = new Uint8Array(24);
      packet.set(a, 16);
      const want = reference(table, a);
      assert.equal(t.lookup(packet, 16, 4), want, `round ${round}: ${a.join('.')}`);
      assert.equal(t.lookup(packet, 16, 4), want, `round ${round}: ${a.join('.')} again`);
    }
  }
});

test('IPv6 longest match, and a removed peer is not answered from the cache', () => {
  const t = new AllowedIPs<string>();
  const v6 = new Uint8Array(16);
  v6.set([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0]);
  t.insert({ address: v6, bits: 48 }, 'net');
  const host = v6.slice();
  host[15] = 5;
  t.insert({ address: host, bits: 128 }, 'host');
  assert.equal(t.lookup(host, 0, 16), 'host');
  const other = v6.slice();
  other[15] = 6;
  assert.equal(t.lookup(other, 0, 16), 'net');
  const a = new Uint8Array([100, 64, 0, 2]);
  t.insert({ address: a, bits: 32 }, 'b');
  assert.equal(t.lookup(a, 0, 4), 'b');
  t.removeValue('b');
  assert.equal(t.lookup(a, 0, 4), undefined);
  t.insert({ address: new Uint8Array([100, 64, 0, 0]), bits: 10 }, 'all');
  assert.equal(t.lookup(a, 0, 4), 'all');
});
