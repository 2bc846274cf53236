import { afterAll, describe, expect, test } from 'vitest';
import { computeLetterbox, detectParamsSchema, type DetectParams } from '@detq/core';
import { letterboxRgb } from '@detq/imaging';
import { loadNativeAddon, postprocess, type FrameDetections } from '@detq/inference';
import type { NativeFrame } from '@detq/native';
import { cocoImageNames, decodeCoco, rng } from './gpu-fixtures';

// The CUDA kernels against their CPU definitions: packages/imaging's letterbox and packages/inference's
// YOLO post-processing, on the same inputs.
const kernels = new (loadNativeAddon().Kernels)(0);
afterAll(() => kernels.dispose());

interface Rgb {
  rgb: Uint8Array;
  width: number;
  height: number;
}

function noiseImage(width: number, height: number, seed: number): Rgb {
  const r = rng(seed);
  const rgb = new Uint8Array(width * height * 3);
  // Smooth structure plus noise, so both interpolation and averaging have something to get wrong.
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.min(255, Math.floor(((i / 3) % width) / 4 + r() * 64)) & 0xff;
  return { rgb, width, height };
}

function nativeFrame(img: Rgb, w: number, h: number): NativeFrame {
  const lb = computeLetterbox(img.width, img.height, w, h);
  return { pixels: img.rgb, width: img.width, height: img.height, resizedWidth: lb.resizedWidth, resizedHeight: lb.resizedHeight, left: lb.left, top: lb.top, gain: lb.gain };
}

describe('GPU letterbox', async () => {
  const coco = await Promise.all(cocoImageNames(12).map(decodeCoco));
  // Enlarging, shrinking on one axis only (the bilinear branch), identity, odd sizes and a large shrink.
  const synthetic = [
    [200, 150],
    [641, 97],
    [640, 640],
    [333, 777],
    [3000, 2000],
  ].map(([w, h], i) => noiseImage(w!, h!, i + 1));
  const images: Rgb[] = [...coco, ...synthetic];

  test.each([
    [640, 640, false],
    [640, 640, true],
    [480, 352, false],
  ])('matches the CPU letterbox within 1 grey level per pixel (%ix%i, fp16 %s)', async (w, h, half) => {
    const gpu = await kernels.letterbox(images.map((img) => nativeFrame(img, w, h)), w, h, half);
    const plane = w * h;
    let worst = 0;
    images.forEach((img, n) => {
      const cpu = letterboxRgb(img.rgb, img.width, img.height, w, h).pixels;
      for (let p = 0; p < plane; p++)
        for (let c = 0; c < 3; c++) {
          const g = Math.round(gpu[n * 3 * plane + c * plane + p]! * 255);
          worst = Math.max(worst, Math.abs(g - cpu[p * 3 + c]!));
        }
    });
    expect(worst).toBeLessThanOrEqual(1);
  });

  test('refuses a letterbox that does not fit the canvas, as a rejected promise', async () => {
    const frame = { ...nativeFrame(synthetic[0]!, 640, 640), left: 600 };
    await expect(kernels.letterbox([frame], 640, 640, false)).rejects.toThrow(/does not fit the 640x640 input/);
  });
});

/** Raw head outputs [batch, 84, anchors] with clusters of overlapping boxes of a few classes. */
function syntheticHead(batch: number, anchors: number, seed: number): Float32Array {
  const r = rng(seed);
  const rows = 84;
  const out = new Float32Array(batch * rows * anchors);
  for (let b = 0; b < batch; b++) {
    const base = b * rows * anchors;
    const centres = Array.from({ length: 25 }, () => [r() * 640, r() * 640, 20 + r() * 200, 20 + r() * 200, Math.floor(r() * 80)] as const);
    for (let a = 0; a < anchors; a++) {
      const [cx, cy, w, h, cls] = centres[Math.floor(r() * centres.length)]!;
      out[base + a] = cx + (r() - 0.5) * 30;
      out[base + anchors + a] = cy + (r() - 0.5) * 30;
      out[base + 2 * anchors + a] = w * (0.8 + r() * 0.4);
      out[base + 3 * anchors + a] = h * (0.8 + r() * 0.4);
      for (let c = 0; c < 80; c++) out[base + (4 + c) * anchors + a] = r() * 0.02;
      out[base + (4 + cls) * anchors + a] = r();
      out[base + (4 + ((cls + 1) % 80)) * anchors + a] = r() * 0.5;
    }
  }
  return out;
}

function sameDetections(gpu: FrameDetections, cpu: FrameDetections): void {
  expect(gpu.count).toBe(cpu.count);
  for (let i = 0; i < cpu.count * 6; i++) {
    const col = i % 6;
    if (col === 5) expect(gpu.rows[i]).toBe(cpu.rows[i]);
    else expect(gpu.rows[i]).toBeCloseTo(cpu.rows[i]!, col === 4 ? 6 : 2);
  }
}

describe('GPU decode + NMS', () => {
  const batch = 4;
  const anchors = 8400;
  const raw = syntheticHead(batch, anchors, 42);
  const sources: [number, number][] = [
    [1280, 720],
    [640, 480],
    [300, 500],
    [4000, 3000],
  ];
  const letterboxes = sources.map(([w, h]) => computeLetterbox(w, h, 640, 640));
  const cases: [string, Partial<DetectParams>][] = [
    ['defaults', {}],
    ['conf 0.001 multi-label (as val)', { conf: 0.001, multiLabel: true }],
    ['agnostic NMS', { agnosticNms: true, iou: 0.5 }],
    ['class filter', { classes: [0, 2, 5, 17, 79], conf: 0.05 }],
    ['max-det 10', { maxDet: 10, conf: 0.01 }],
  ];
  test.each(cases)('keeps the same boxes as the CPU post-processing (%s)', async (_, p) => {
    const params = detectParamsSchema.parse(p);
    const gpu = await kernels.postprocess(raw, batch, 84, anchors, letterboxes, params);
    let total = 0;
    for (let b = 0; b < batch; b++) {
      const cpu = postprocess(raw, b * 84 * anchors, 80, anchors, params, letterboxes[b]!);
      total += cpu.count;
      sameDetections(gpu[b]!, cpu);
    }
    expect(total).toBeGreaterThan(0);
  });
});
