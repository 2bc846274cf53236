import { describe, expect, it } from 'vitest';
import { ImageError } from '@detq/core';
import { decodeImage, decodeLetterboxed } from '@detq/imaging';
import { badImages } from '../helpers/fixtures';

describe('decodeImage refuses bad files with a specific code', () => {
  for (const [name, { bytes, code }] of Object.entries(badImages())) {
    it(`${name} -> ${code}`, async () => {
      const err = await decodeImage(bytes).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ImageError);
      expect((err as ImageError).code).toBe(code);
      expect((err as ImageError).message.length).toBeGreaterThan(10);
    });
  }

  it('the CPU letterbox decode (libvips shrink-on-load) gives every bad file the same code', async () => {
    const bad = Object.entries(badImages());
    const codes = await Promise.all(bad.map(([, { bytes }]) => decodeLetterboxed(bytes, 640, 640).then(() => 'OK', (e: ImageError) => e.code)));
    expect(codes).toEqual(bad.map(([, { code }]) => code));
  });

  // libvips shares one error buffer between threads: codes must not depend on what else fails at once.
  it('gives the same codes when every bad file is decoded at the same time', async () => {
    const bad = Object.entries(badImages());
    for (let round = 0; round < 5; round++) {
      const codes = await Promise.all(bad.map(([, { bytes }]) => decodeImage(bytes).then(() => 'OK', (e: ImageError) => e.code)));
      expect(codes).toEqual(bad.map(([, { code }]) => code));
    }
  });

  it('enforces the pixel limit on real images', async () => {
    const { readFile } = await import('node:fs/promises');
    const { SAMPLES } = await import('../helpers/fixtures');
    const bytes = await readFile(`${SAMPLES}/bus.jpg`);
    await expect(decodeImage(bytes, { maxPixels: 810 * 1080 - 1, maxBytes: 1e9 })).rejects.toMatchObject({ code: 'TOO_MANY_PIXELS' });
    await expect(decodeImage(bytes, { maxPixels: 1e8, maxBytes: 1000 })).rejects.toMatchObject({ code: 'FILE_TOO_LARGE' });
    expect(await decodeImage(bytes)).toMatchObject({ width: 810, height: 1080 });
  });

  it('decodes a 12 MP photo straight to the letterbox: its geometry, the 114 pad, the picture inside', async () => {
    const { readFile } = await import('node:fs/promises');
    const { SAMPLES } = await import('../helpers/fixtures');
    const sharp = (await import('sharp')).default;
    // bus.jpg (810x1080) upscaled x3.75 to 3038x4050, ~12 MP, made at run time.
    const big = await sharp(await readFile(`${SAMPLES}/bus.jpg`)).resize(3038, 4050).jpeg({ quality: 90 }).toBuffer();
    const { pixels, letterbox } = await decodeLetterboxed(big, 640, 640);
    expect(letterbox).toMatchObject({ srcWidth: 3038, srcHeight: 4050, resizedWidth: 480, resizedHeight: 640, left: 80, top: 0 });
    expect(pixels).toHaveLength(640 * 640 * 3);
    const px = (x: number, y: number) => Array.from(pixels.subarray((y * 640 + x) * 3, (y * 640 + x) * 3 + 3));
    for (const [x, y] of [[0, 0], [79, 320], [560, 320], [639, 639]] as const) expect(px(x, y)).toEqual([114, 114, 114]);
    // Inside, the small letterbox of the original and of the 12 MP copy agree to within a few grey levels.
    const small = await decodeLetterboxed(await readFile(`${SAMPLES}/bus.jpg`), 640, 640);
    let diff = 0;
    for (let i = 0; i < pixels.length; i++) diff += Math.abs(pixels[i]! - small.pixels[i]!);
    expect(diff / pixels.length).toBeLessThan(4);
  });
});
