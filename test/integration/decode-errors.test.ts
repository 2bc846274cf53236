import { describe, expect, it } from 'vitest';
import { ImageError } from '@detq/core';
import { decodeImage } from '@detq/imaging';
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
});
