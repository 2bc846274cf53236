import { describe, expect, it } from 'vitest';
import { computeLetterbox } from '@detq/core';
import { letterboxRgb, resizeRgb } from '@detq/imaging';

describe('computeLetterbox (Ultralytics LetterBox rounding)', () => {
  it('centres a landscape image with the -0.1/+0.1 pad split', () => {
    const lb = computeLetterbox(1280, 720, 640, 640);
    expect(lb.gain).toBe(0.5);
    expect([lb.resizedWidth, lb.resizedHeight]).toEqual([640, 360]);
    expect([lb.left, lb.top]).toEqual([0, 140]);
  });

  it('rounds an odd padding the way Python round() does', () => {
    // 810x1080 -> 480x640: dw = 80 -> left 80; 500x333 at 640: 640x426.24 -> 426, dh = 107 -> top round(106.9)=107
    expect(computeLetterbox(810, 1080, 640, 640)).toMatchObject({ resizedWidth: 480, resizedHeight: 640, left: 80, top: 0 });
    expect(computeLetterbox(500, 333, 640, 640)).toMatchObject({ resizedWidth: 640, resizedHeight: 426, left: 0, top: 107 });
  });
});

describe('letterboxRgb', () => {
  it('pads with 114 and keeps a same-size image untouched', () => {
    const src = new Uint8Array(4 * 2 * 3).fill(200);
    const { pixels, letterbox } = letterboxRgb(src, 4, 2, 4, 4);
    expect(letterbox.top).toBe(1);
    expect(Array.from(pixels.subarray(0, 12))).toEqual(new Array(12).fill(114));
    expect(Array.from(pixels.subarray(12, 36))).toEqual(new Array(24).fill(200));
    expect(Array.from(pixels.subarray(36))).toEqual(new Array(12).fill(114));
  });

  it('area-averages when shrinking and interpolates when enlarging', () => {
    // 2x1 -> 1x... : a 4x2 checker of 0/255 shrunk 2x averages to 128 (rounded from 127.5)
    const checker = new Uint8Array([0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 0]);
    expect(Array.from(resizeRgb(checker, 4, 2, 2, 1))).toEqual([128, 128, 128, 128, 128, 128]);
    const ramp = new Uint8Array([0, 0, 0, 100, 100, 100]);
    // 2 -> 4 pixels with half-pixel centres: 0, 25, 75, 100
    expect(Array.from(resizeRgb(ramp, 2, 1, 4, 1)).filter((_, i) => i % 3 === 0)).toEqual([0, 25, 75, 100]);
  });
});
