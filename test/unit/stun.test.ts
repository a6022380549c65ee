// STUN: the exact request bytes Tailscale's servers expect, and response parsing including forgeries.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { crc32 } from '../../main/engine/packet/crc32.ts';
import { bindingRequest, parseBindingResponse } from '../../main/engine/stun/stun.ts';

const TXID = Uint8Array.from({ length: 12 }, (_, i) => i);
const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

test('CRC-32/IEEE check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('binding request bytes match the documented vector', () => {
  assert.equal(
    Buffer.from(bindingRequest(TXID)).toString('hex'),
    '000100142112a442000102030405060708090a0b802200087461696c6e6f646580280004' + '8aabad90',
  );
});

test('XOR-MAPPED-ADDRESS response (IPv4) parses to the documented address', () => {
  const r = parseBindingResponse(hex('0101000c2112a442000102030405060708090a0b 0020000800 01 83bb 2010a746'));
  assert.deepEqual(r && { address: r.address, port: r.port }, { address: '1.2.3.4', port: 41641 });
  assert.deepEqual(r?.txID, TXID);
});

test('IPv6 XOR-MAPPED-ADDRESS, MAPPED-ADDRESS fallback, and the XOR attribute preferred', () => {
  // Build an IPv6 reply for 2001:db8::1 port 443.
  const addr = hex('20010db8000000000000000000000001');
  const key = new Uint8Array(16);
  new DataView(key.buffer).setUint32(0, 0x2112a442);
  key.set(TXID, 4);
  const x = addr.map((b, i) => b ^ key[i]);
  const body = new Uint8Array([0x00, 0x20, 0x00, 0x14, 0x00, 0x02, (443 ^ 0x2112) >> 8, (443 ^ 0x2112) & 0xff, ...x]);
  const msg = new Uint8Array([0x01, 0x01, 0x00, body.length, 0x21, 0x12, 0xa4, 0x42, ...TXID, ...body]);
  assert.deepEqual(
    parseBindingResponse(msg) && { a: parseBindingResponse(msg)?.address, p: parseBindingResponse(msg)?.port },
    {
      a: '2001:db8::1',
      p: 443,
    },
  );
  const plain = new Uint8Array([
    0x01,
    0x01,
    0x00,
    0x0c,
    0x21,
    0x12,
    0xa4,
    0x42,
    ...TXID,
    0,
    1,
    0,
    8,
    0,
    1,
    0x1f,
    0x90,
    198,
    51,
    100,
    7,
  ]);
  assert.equal(parseBindingResponse(plain)?.address, '198.51.100.7');
  assert.equal(parseBindingResponse(plain)?.port, 8080);
});

test('forged, truncated and non-success messages are rejected without throwing', () => {
  const good = hex('0101000c2112a442000102030405060708090a0b002000080001 83bb2010a746');
  for (let cut = 0; cut < good.length; cut++) assert.equal(parseBindingResponse(good.subarray(0, cut)), undefined);
  const badCookie = good.slice();
  badCookie[4] = 0;
  assert.equal(parseBindingResponse(badCookie), undefined);
  const request = bindingRequest(TXID);
  assert.equal(parseBindingResponse(request), undefined, 'a request is not a response');
  const lying = good.slice();
  lying[3] = 0xff; // length beyond the datagram
  assert.equal(parseBindingResponse(lying), undefined);
  for (let i = 0; i < 20_000; i++) {
    const r = randomBytes(20 + (i % 60));
    if (i % 2 === 0) r.set([0x01, 0x01, 0x00, r.length - 20, 0x21, 0x12, 0xa4, 0x42]);
    assert.doesNotThrow(() => parseBindingResponse(r));
  }
});
