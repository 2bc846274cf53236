import { LETTERBOX_PAD, computeLetterbox, type Letterbox } from '@detq/core';
import { resizeRgb } from './resize';

export interface LetterboxedImage {
  pixels: Uint8Array;
  letterbox: Letterbox;
}

/** Letterboxes an oriented uint8 RGB image into a dstWidth x dstHeight canvas padded with 114. */
export function letterboxRgb(
  rgb: Uint8Array,
  width: number,
  height: number,
  dstWidth: number,
  dstHeight: number,
): LetterboxedImage {
  const lb = computeLetterbox(width, height, dstWidth, dstHeight);
  const resized = resizeRgb(rgb, width, height, lb.resizedWidth, lb.resizedHeight);
  const canvas = new Uint8Array(dstWidth * dstHeight * 3).fill(LETTERBOX_PAD);
  const rowBytes = lb.resizedWidth * 3;
  for (let y = 0; y < lb.resizedHeight; y++) {
    const from = y * rowBytes;
    canvas.set(resized.subarray(from, from + rowBytes), ((lb.top + y) * dstWidth + lb.left) * 3);
  }
  return { pixels: canvas, letterbox: lb };
}
