// PNG reading and writing for the tests, with pngjs.
import pngjs from 'pngjs';

const { PNG } = pngjs;

// `alphaAt(x, y)`: the alpha of an RGBA PNG, or the grey value of a mask (a grey PNG).
export function readPng(bytes) {
  const png = PNG.sync.read(Buffer.from(bytes));
  const { width, height, data } = png; // pngjs expands every colour type to RGBA
  const grey = !png.color;
  const channels = (png.color ? 3 : 1) + (png.alpha ? 1 : 0);
  const alphaAt = (x, y) => data[(y * width + x) * 4 + (grey ? 0 : 3)];
  const patchAlpha = (x0, y0, size) => {
    let sum = 0;
    for (let y = y0; y < y0 + size; y++) for (let x = x0; x < x0 + size; x++) sum += alphaAt(x, y);
    return sum / (size * size);
  };
  return { width, height, channels, alphaAt, patchAlpha };
}

// An 8-bit RGBA PNG of `rgba` (width x height x 4 bytes).
export function writePng(width, height, rgba) {
  const png = new PNG({ width, height });
  Buffer.from(rgba.buffer, rgba.byteOffset, width * height * 4).copy(png.data);
  return PNG.sync.write(png);
}
