// The PNG encoder and the drawn icons: valid chunks and CRCs, pixels that decode back unchanged, one distinct
// image per tray state.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { APP_ICON_SIZE, drawIcon, TRAY_ICON_SIZES, TRAY_ICON_STATES } from '../../main/electron/icons.ts';
import { encodePng, PNG_SIGNATURE, type RgbaImage } from '../../main/electron/png.ts';
import { crc32 } from '../../main/engine/packet/crc32.ts';

interface PngChunk {
  type: string;
  data: Buffer;
}

/** Splits a PNG into chunks, checking the signature and every CRC. */
function readChunks(png: Buffer): PngChunk[] {
  assert.deepEqual([...png.subarray(0, 8)], [...PNG_SIGNATURE], 'signature');
  const chunks: PngChunk[] = [];
  let at = 8;
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    assert.equal(png.readUInt32BE(at + 8 + length), crc32(png, at + 4, at + 8 + length), `CRC of ${type}`);
    chunks.push({ type, data });
    at += 12 + length;
  }
  assert.equal(at, png.length, 'no trailing bytes');
  return chunks;
}

/** Decodes what encodePng writes (8-bit RGBA, filter 0 rows). */
function decode(png: Buffer): RgbaImage {
  const chunks = readChunks(png);
  assert.deepEqual(
    chunks.map((c) => c.type),
    ['IHDR', 'IDAT', 'IEND'],
  );
  const ihdr = chunks[0].data;
  assert.equal(ihdr.length, 13);
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  assert.deepEqual([...ihdr.subarray(8)], [8, 6, 0, 0, 0], 'depth 8, RGBA, deflate, filter set 0, no interlace');
  const raw = inflateSync(Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  assert.equal(raw.length, (width * 4 + 1) * height);
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 4 + 1);
    assert.equal(raw[row], 0, 'filter type none');
    data.set(raw.subarray(row + 1, row + 1 + width * 4), y * width * 4);
  }
  return { width, height, data };
}

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('encodePng round-trips arbitrary pixels, odd sizes included', () => {
  const width = 7;
  const height = 3;
  const data = new Uint8Array(width * height * 4).map((_, i) => (i * 37 + 11) & 0xff);
  const back = decode(encodePng({ width, height, data }));
  assert.equal(back.width, width);
  assert.equal(back.height, height);
  assert.deepEqual(back.data, data);
});

test('encodePng refuses a buffer that does not match the size', () => {
  assert.throws(() => encodePng({ width: 2, height: 2, data: new Uint8Array(15) }), RangeError);
  assert.throws(() => encodePng({ width: 0, height: 2, data: new Uint8Array(0) }), RangeError);
});

test('every tray icon decodes back to the drawn pixels and has opaque and clear parts', () => {
  for (const state of TRAY_ICON_STATES) {
    for (const size of TRAY_ICON_SIZES) {
      const image = drawIcon(state, size);
      assert.equal(image.data.length, size * size * 4);
      assert.deepEqual(decode(encodePng(image)).data, image.data, `${state} ${size}`);
      const alphas = image.data.filter((_, i) => i % 4 === 3);
      assert.ok(alphas.includes(255) && alphas.includes(0), `${state} ${size}: opaque tile, clear corners`);
    }
  }
});

test('each state draws a different icon', () => {
  for (const size of TRAY_ICON_SIZES) {
    const seen = new Map<string, string>();
    for (const state of TRAY_ICON_STATES) {
      const key = Buffer.from(drawIcon(state, size).data).toString('base64');
      assert.equal(seen.get(key), undefined, `${state} looks like ${seen.get(key)} at ${size} px`);
      seen.set(key, state);
    }
  }
});

test('the app icon is 512 px and the tile colour shows through the lattice', () => {
  const icon = drawIcon('app', APP_ICON_SIZE);
  assert.equal(icon.width, 512);
  const centre = (256 * 512 + 256) * 4;
  // The centre of the lattice is a white crossing; the tile at a quarter of the way in is coloured.
  assert.deepEqual([...icon.data.subarray(centre, centre + 4)], [255, 255, 255, 255]);
  const edge = (256 * 512 + 70) * 4;
  assert.notDeepEqual([...icon.data.subarray(edge, edge + 3)], [255, 255, 255]);
  assert.equal(icon.data[edge + 3], 255);
});
