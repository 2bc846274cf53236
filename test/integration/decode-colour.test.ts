import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage, decodeLetterboxed } from '@detq/imaging';

// Ultralytics reads images with cv2.imread, which leaves an embedded ICC profile alone, and nvJPEG on
// the GPU path does too: the CPU path must decode the stored values, not convert them to sRGB (which
// moved coco128's mAP50 off Ultralytics' figure and cost every such image a colour transform).
/** The same JPEG with an APP2 ICC_PROFILE segment (Display P3) inserted after SOI. */
async function withAndWithoutProfile(): Promise<[Buffer, Buffer]> {
  const w = 96;
  const h = 64;
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) raw.set([(i * 7) % 256, (i >> 3) % 256, 200 - (i % 150)], i * 3);
  const plain = await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
  const p3 = await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).withIccProfile('p3').jpeg({ quality: 95 }).toBuffer();
  // The P3 file's ICC segment(s): APP2 markers whose payload starts with ICC_PROFILE.
  const segments: Buffer[] = [];
  for (let p = 2; p + 4 <= p3.length && p3[p] === 0xff && p3[p + 1] !== 0xda; ) {
    const len = p3.readUInt16BE(p + 2);
    if (p3[p + 1] === 0xe2 && p3.toString('latin1', p + 4, p + 15) === 'ICC_PROFILE') segments.push(p3.subarray(p, p + 2 + len));
    p += 2 + len;
  }
  expect(segments.length).toBeGreaterThan(0);
  const profiled = Buffer.concat([plain.subarray(0, 2), ...segments, plain.subarray(2)]);
  expect((await sharp(profiled).metadata()).hasProfile).toBe(true);
  return [plain, profiled];
}

describe('an embedded ICC profile', () => {
  it('is ignored: the full decode and the letterbox decode give the pixels of the same JPEG without it', async () => {
    const [plain, profiled] = await withAndWithoutProfile();
    expect(Buffer.from((await decodeImage(profiled)).rgb).equals(Buffer.from((await decodeImage(plain)).rgb))).toBe(true);
    expect(Buffer.from((await decodeLetterboxed(profiled, 640, 640)).pixels).equals(Buffer.from((await decodeLetterboxed(plain, 640, 640)).pixels))).toBe(true);
  });
});
