import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImageError } from '@detq/core';
import { decodeImage, gpuDecodable, inspectForDeviceDecode, readJpegHeader } from '@detq/imaging';
import { oddImages } from '../helpers/odd-jpegs';

// The GPU path reads only a JPEG's header (no decode) to apply the limits and choose where it is
// decoded. Every answer here is checked against what libvips (sharp) says about the same file.
let files: Record<string, Buffer>;
beforeAll(async () => {
  files = await oddImages();
});
const file = (name: string) => files[name]!;

describe('readJpegHeader', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('orientation %i: the tag and the oriented size libvips decodes to', async (o) => {
    const bytes = file(`orientation-${o}.jpg`);
    const h = readJpegHeader(bytes)!;
    const meta = await sharp(bytes).metadata();
    const decoded = await decodeImage(bytes);
    expect(h).toMatchObject({ orientation: o, storedWidth: meta.width, storedHeight: meta.height, width: decoded.width, height: decoded.height });
    expect(h).toMatchObject({ sof: 0xc0, precision: 8, components: 3, progressive: false });
    expect(gpuDecodable(h)).toBe(true);
  });

  it('grey baseline: one component, decodable on the GPU', () => {
    const h = readJpegHeader(file('grey.jpg'))!;
    expect(h).toMatchObject({ components: 1, progressive: false, width: 405, height: 540 });
    expect(gpuDecodable(h)).toBe(true);
  });

  it('progressive and CMYK are recognised and left to the CPU', () => {
    const p = readJpegHeader(file('progressive.jpg'))!;
    expect(p).toMatchObject({ sof: 0xc2, progressive: true, width: 405, height: 540 });
    expect(gpuDecodable(p)).toBe(false);
    const c = readJpegHeader(file('cmyk.jpg'))!;
    expect(c).toMatchObject({ components: 4, width: 405, height: 540 });
    expect(gpuDecodable(c)).toBe(false);
  });

  it('a 12-bit JPEG (header made here) is left to the CPU', () => {
    const twelve = Buffer.from(file('orientation-1.jpg'));
    const sof = twelve.indexOf(Buffer.from([0xff, 0xc0]));
    twelve[sof] = 0xff;
    twelve[sof + 1] = 0xc1;
    twelve[sof + 4] = 12;
    const h = readJpegHeader(twelve)!;
    expect(h).toMatchObject({ sof: 0xc1, precision: 12 });
    expect(gpuDecodable(h)).toBe(false);
  });

  it('other formats and empty files are not read', () => {
    expect(readJpegHeader(file('photo.png'))).toBeUndefined();
    expect(readJpegHeader(file('empty.jpg'))).toBeUndefined();
  });
});

describe('inspectForDeviceDecode', () => {
  it('applies the CPU path limits and codes from the header alone', () => {
    const bytes = file('orientation-6.jpg');
    expect(inspectForDeviceDecode(bytes)).toMatchObject({ width: 540, height: 405, orientation: 6 });
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof ImageError ? e.code : 'other';
      }
      return 'OK';
    };
    expect(codeOf(() => inspectForDeviceDecode(bytes, { maxPixels: 405 * 540 - 1, maxBytes: 1e9 }))).toBe('TOO_MANY_PIXELS');
    expect(codeOf(() => inspectForDeviceDecode(bytes, { maxPixels: 1e9, maxBytes: 100 }))).toBe('FILE_TOO_LARGE');
    expect(codeOf(() => inspectForDeviceDecode(file('empty.jpg')))).toBe('EMPTY_FILE');
  });

  it('hands progressive, CMYK and PNG files to the CPU path', () => {
    for (const name of ['progressive.jpg', 'cmyk.jpg', 'photo.png']) expect(inspectForDeviceDecode(file(name)), name).toBeUndefined();
  });

  // Their scans are not read in JS: the device's decoder refuses them and sharp gives the error code
  // (device-decode-fallback.test.ts here, test/gpu/decode.test.ts on nvJPEG).
  it('lets baseline JPEGs with a damaged or missing end go out encoded, at their header size', () => {
    for (const name of ['truncated.jpg', 'header-only.jpg', 'corrupt.jpg']) expect(inspectForDeviceDecode(file(name)), name).toMatchObject({ sof: 0xc0 });
  });
});
