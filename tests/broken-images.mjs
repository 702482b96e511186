// Broken and unusual image files for the page's and the npm package's tests (the engine's own
// suites use the Rust corpus in crates/cutout-testkit): each with the words its error must hold,
// or `works: true` for unusual files that must work (`worksInBrowser`: in a page only).
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

// A PNG whose rows are `row(y)` (filter byte included), of the given bit depth and colour type.
function png(width, height, bitDepth, colourType, row) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([bitDepth, colourType, 0, 0, 0], 8);
  const rows = Buffer.concat(Array.from({ length: height }, (_, y) => row(y)));
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// A 16-bit RGBA PNG: a red square on blue.
export function png16(width, height) {
  return png(width, height, 16, 6, (y) => {
    const line = Buffer.alloc(1 + width * 8);
    for (let x = 0; x < width; x++) {
      const inside = x >= width / 4 && x < (width * 3) / 4 && y >= height / 4 && y < (height * 3) / 4;
      const [r, g, b] = inside ? [0xe6e6, 0x1414, 0x1414] : [0x1414, 0x2828, 0xdcdc];
      line.writeUInt16BE(r, 1 + x * 8);
      line.writeUInt16BE(g, 3 + x * 8);
      line.writeUInt16BE(b, 5 + x * 8);
      line.writeUInt16BE(0xffff, 7 + x * 8);
    }
    return line;
  });
}

// A black 1-bit PNG: a few kilobytes that inflate to width x height pixels.
function blackPng(width, height) {
  const line = Buffer.alloc(1 + Math.ceil(width / 8));
  return png(width, height, 1, 0, () => line);
}

// `photo` must be an ordinary (baseline or progressive) JPEG.
export function brokenImages(photo) {
  const jpeg = Buffer.from(photo);
  const frame = [...jpeg.keys()].find((i) => jpeg[i] === 0xff && [0xc0, 0xc1, 0xc2].includes(jpeg[i + 1]));
  const arithmetic = Buffer.from(jpeg);
  arithmetic[frame + 1] = jpeg[frame + 1] === 0xc2 ? 0xca : 0xc9;
  const cutShort = /the image is corrupt or truncated: .*cut short/;
  return [
    { name: 'empty.jpg', bytes: Buffer.alloc(0), expected: /the input is empty/ },
    { name: 'notes.png', bytes: Buffer.from('this is not an image'), expected: /not a supported image/ },
    { name: 'cut-in-scan.jpg', bytes: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), expected: cutShort },
    {
      name: 'half-with-end-marker.jpg',
      bytes: Buffer.concat([jpeg.subarray(0, jpeg.length / 2), Buffer.from([0xff, 0xd9])]),
      expected: cutShort,
    },
    // The engine reads no arithmetic coding; a page hands such a file to the browser's own
    // decoder, which does (this one, relabelled, decodes to noise there).
    { name: 'arithmetic.jpg', bytes: arithmetic, expected: /arithmetic coding, which is not supported/, worksInBrowser: true },
    // 1.6 GB of pixels from a few hundred kilobytes: refused from the header, never inflated.
    { name: 'bomb.png', bytes: blackPng(20000, 20000), expected: /the image is too large: 20000x20000 = 400000000 pixels/ },
    { name: 'oversized.png', bytes: blackPng(8000, 7000), expected: /the image is too large: 8000x7000 = 56000000 pixels/ },
    { name: 'deep-colour.png', bytes: png16(96, 64), works: true },
  ];
}
