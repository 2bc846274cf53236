import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { badImages, SAMPLES } from './fixtures';

/**
 * The JPEG variants the GPU decode path must treat exactly as the CPU path, made at run time from one
 * shared photo: every EXIF orientation (same stored pixels, tag 1..8), grey, progressive, CMYK, a PNG,
 * and the truncated/corrupt files of badImages(). Keyed by name.
 */
export async function oddImages(): Promise<Record<string, Buffer>> {
  const photo = sharp(await readFile(join(SAMPLES, 'bus.jpg'))).resize(405, 540);
  const out: Record<string, Buffer> = {};
  for (let o = 1; o <= 8; o++) out[`orientation-${o}.jpg`] = await photo.clone().jpeg({ quality: 90 }).withMetadata({ orientation: o }).toBuffer();
  out['grey.jpg'] = await photo.clone().toColourspace('b-w').jpeg({ quality: 90 }).toBuffer();
  out['progressive.jpg'] = await photo.clone().jpeg({ quality: 90, progressive: true }).toBuffer();
  out['cmyk.jpg'] = await photo.clone().toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer();
  out['photo.png'] = await photo.clone().png().toBuffer();
  const bad = badImages();
  for (const name of ['truncated.jpg', 'header-only.jpg', 'corrupt.jpg', 'empty.jpg'] as const) out[name] = bad[name]!.bytes;
  return out;
}
