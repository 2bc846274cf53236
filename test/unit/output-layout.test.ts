import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { computeLetterbox, detectParamsSchema } from '@detq/core';
import { decodeEndToEnd, detectOutputLayout, end2endFlag, OnnxRuntimeEngine, ROW } from '@detq/inference';
import { endToEndOnnx, externalScale } from '../helpers/tiny-onnx';

const params = (p: object = {}) => detectParamsSchema.parse(p);
const rows = (d: { rows: Float32Array; count: number }) =>
  Array.from({ length: d.count }, (_, i) => Array.from(d.rows.subarray(i * ROW, i * ROW + ROW)).map((v) => Math.round(v * 1000) / 1000));

describe('detectOutputLayout', () => {
  it('takes a raw YOLO head [B, 4+nc, anchors], with dynamic batch and anchors', () => {
    expect(detectOutputLayout([1, 84, 8400])).toEqual({ kind: 'raw', numClasses: 80, anchors: 8400 });
    expect(detectOutputLayout(['batch', 84, 'anchors'], { end2end: false, numClasses: 80 })).toEqual({ kind: 'raw', numClasses: 80, anchors: 0 });
    // Two classes give 6 rows: still a raw head, the 6 is not in the last dimension.
    expect(detectOutputLayout([1, 6, 8400])).toEqual({ kind: 'raw', numClasses: 2, anchors: 8400 });
  });

  it('takes an end-to-end output [B, N, 6] from its shape or its end2end metadata', () => {
    expect(detectOutputLayout([1, 300, 6])).toEqual({ kind: 'end2end', maxDetections: 300 });
    expect(detectOutputLayout(['batch', 300, 6], { end2end: true, numClasses: 80 })).toEqual({ kind: 'end2end', maxDetections: 300 });
    // [B, 6, 6] is ambiguous by shape: the metadata decides.
    expect(detectOutputLayout([1, 6, 6], { end2end: true })).toEqual({ kind: 'end2end', maxDetections: 6 });
    expect(detectOutputLayout([1, 6, 6], { end2end: false })).toEqual({ kind: 'raw', numClasses: 2, anchors: 6 });
  });

  it('refuses other layouts with a message naming the shape', () => {
    expect(() => detectOutputLayout([1, 84, 80, 80], {}, 'm.onnx')).toThrow(/m\.onnx has output \[1, 84, 80, 80\]: rank 4, expected 3/);
    expect(() => detectOutputLayout([1, 300, 7], { end2end: true })).toThrow(/output \[1, 300, 7\]: its metadata says end2end but the last dimension is not 6/);
    expect(() => detectOutputLayout([1, 4, 8400])).toThrow(/output \[1, 4, 8400\]: fewer than 5 rows/);
    expect(() => detectOutputLayout([1, 85, 8400], { numClasses: 80 })).toThrow(/output \[1, 85, 8400\]: its metadata names 80 classes/);
    expect(() => detectOutputLayout([1, 84, 8400], {})).not.toThrow();
  });

  it("reads Ultralytics' end2end metadata spelling", () => {
    expect([end2endFlag('True'), end2endFlag('False'), end2endFlag(undefined), end2endFlag('maybe')]).toEqual([true, false, undefined, undefined]);
  });
});

describe('decodeEndToEnd (a hand-built [2, 4, 6] output)', () => {
  // Two images, 4 detection slots each: x1, y1, x2, y2, score, class in 640x640 input pixels.
  const out = new Float32Array([
    // image 0
    100, 180, 200, 280, 0.9, 0,
    300, 300, 340, 340, 0.2, 2, // below the default conf 0.25
    0, 80, 40, 120, 0.95, 1, // reaches into the letterbox bar: clipped to the image
    0, 0, 0, 0, 0, 0, // padding slot
    // image 1
    10, 10, 20, 20, 0.5, 3,
    10, 10, 20, 20, 0.6, 3, // same box: no NMS, the model already selected it
    0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0,
  ]);
  // A 1280x960 image letterboxed into 640x640: gain 0.5, 80 px bars at top and bottom.
  const lb = computeLetterbox(1280, 960, 640, 640);

  it('filters by conf, sorts by score, maps back through the letterbox and clips', () => {
    expect(lb).toMatchObject({ gain: 0.5, left: 0, top: 80 });
    expect(rows(decodeEndToEnd(out, 0, 4, params(), lb))).toEqual([
      [0, 0, 80, 80, 0.95, 1],
      [200, 200, 400, 400, 0.9, 0],
    ]);
    const identity = computeLetterbox(640, 640, 640, 640);
    expect(rows(decodeEndToEnd(out, 4 * 6, 4, params(), identity))).toEqual([
      [10, 10, 20, 20, 0.6, 3],
      [10, 10, 20, 20, 0.5, 3],
    ]);
  });

  it('applies the class filter and max-det', () => {
    expect(rows(decodeEndToEnd(out, 0, 4, params({ classes: [0, 2], conf: 0.1 }), lb)).map((r) => r[5])).toEqual([0, 2]);
    expect(decodeEndToEnd(out, 0, 4, params({ maxDet: 1 }), lb).count).toBe(1);
  });
});

/** The tiny end-to-end model's detections for a 2x2 letterboxed frame whose CHW values are `chw`. */
async function inferTiny(engine: OnnxRuntimeEngine, chw: number[]) {
  const pixels = new Uint8Array(12);
  chw.forEach((v, k) => (pixels[(k % 4) * 3 + Math.floor(k / 4)] = v));
  const lb = { srcWidth: 300, srcHeight: 300, dstWidth: 2, dstHeight: 2, resizedWidth: 2, resizedHeight: 2, left: 0, top: 0, gain: 1 };
  const [d] = await engine.infer([{ layout: 'letterboxed', pixels, width: 2, height: 2, letterbox: lb }], params());
  return rows(d!);
}

describe('an end-to-end ONNX through onnxruntime-cpu', () => {
  it('is detected from its shape and end2end metadata and decoded without NMS', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'detq-e2e-'));
    const path = join(dir, 'e2e.onnx');
    // Pixel values /255 times 255 give back the byte for boxes and class; the score stays value/255.
    await writeFile(path, endToEndOnnx([255, 255, 255, 255, 1, 255], { end2end: 'True', names: "{0: 'a', 1: 'b', 2: 'c', 3: 'd', 4: 'e', 5: 'f', 6: 'g', 7: 'h'}" }));
    const engine = await OnnxRuntimeEngine.load(path, { numClasses: 80, threads: 1 });
    try {
      expect(engine.info).toMatchObject({ outputLayout: 'end2end', numClasses: 8, inputWidth: 2, inputHeight: 2, classNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'] });
      // The two rows in CHW order: x1,y1,x2,y2,score,cls = 10,20,110,120,230/255,3 and 50,50,60,60,25/255,7.
      expect(await inferTiny(engine, [10, 20, 110, 120, 230, 3, 50, 50, 60, 60, 25, 7])).toEqual([[10, 20, 110, 120, 0.902, 3]]);
    } finally {
      await engine.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('an ONNX model with external data', () => {
  it('finds its weights beside the model file, not in the working directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'detq-external-'));
    const path = join(dir, 'e2e.onnx');
    await writeFile(path, endToEndOnnx([2, 2, 2, 2, 1, 1], { end2end: 'True' }, { externalScaleFile: 'scale.bin' }));
    await writeFile(join(dir, 'scale.bin'), externalScale([2, 2, 2, 2, 1, 1]));
    const engine = await OnnxRuntimeEngine.load(path, { numClasses: 8, threads: 1 });
    try {
      // x1..y2 = 2 x value / 255: the external scale of 2 was applied.
      expect(await inferTiny(engine, [10, 20, 30, 40, 230, 3, 50, 50, 60, 60, 25, 7])).toEqual([[0.078, 0.157, 0.235, 0.314, 0.902, 0]]);
    } finally {
      await engine.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
