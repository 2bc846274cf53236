import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EXIT_CODES, type ImageRecord } from '@detq/core';
import { main } from '@detq/cli';
import { matchBoxes } from '@detq/pipeline';
import { COCO_IMAGES, COCO_LABELS, cocoImageNames, MODEL_DYN, MODEL_INT8_320, tempDir } from '../helpers/fixtures';

// The parity gate (`detq verify`, the same function `build-engine --verify` runs) on the CPU:
// onnxruntime-cpu running yolo11n-dyn.onnx stands in for the engine under test.
const detq = (...args: string[]) => main(['node', 'detq', ...args]);

function capture(stream: NodeJS.WriteStream) {
  const chunks: string[] = [];
  vi.spyOn(stream, 'write').mockImplementation((c: string | Uint8Array) => (chunks.push(String(c)), true));
  return () => chunks.join('');
}

const record = (key: string, boxes: [number, number, number, number, number][]): ImageRecord =>
  ({ key, detections: boxes.map(([x1, y1, x2, y2, c]) => ({ box: [x1, y1, x2, y2], confidence: 0.9, class_id: c, class_name: String(c) })) }) as unknown as ImageRecord;

describe('matchBoxes', () => {
  it('matches a reference box to one unused candidate box of its class at IoU >= the threshold', () => {
    const reference = [record('a', [[0, 0, 100, 100, 0], [0, 0, 100, 100, 0], [200, 200, 300, 300, 1]]), record('b', [[0, 0, 10, 10, 2]])];
    const candidate = [
      // one box for the two identical reference boxes: matched once; the class-1 box shifted to IoU 0.82
      record('a', [[1, 0, 101, 100, 0], [210, 200, 310, 300, 1]]),
    ];
    expect(matchBoxes(reference, candidate, 0.9)).toEqual({ matched: 1, total: 4 });
    expect(matchBoxes(reference, candidate, 0.8)).toEqual({ matched: 2, total: 4 });
    expect(matchBoxes(reference, reference, 0.9)).toEqual({ matched: 4, total: 4 });
  });
});

describe('detq verify on the CPU', () => {
  let images: string;
  beforeAll(async () => {
    // A handful of coco128 images keeps four onnxruntime runs short.
    images = join(await tempDir('detq-verify-'), 'images');
    await mkdir(images);
    for (const name of cocoImageNames(4)) await copyFile(join(COCO_IMAGES, name), join(images, name));
  });
  afterEach(() => vi.restoreAllMocks());

  it('passes an engine against its own model, with the mAP check when labels are given (exit 0)', async () => {
    const out = capture(process.stdout);
    capture(process.stderr);
    expect(await detq('verify', '--engine', 'onnxruntime-cpu', '--model', MODEL_DYN, '--images', images, '--labels', COCO_LABELS, '--json')).toBe(EXIT_CODES.OK);
    const figures = JSON.parse(out());
    expect(figures).toMatchObject({ passed: true, images: 4, matchedFraction: 1, minMatchedFraction: 0.97, minIou: 0.9, maxMapDrift: 0.01, reasons: [] });
    expect(figures.referenceBoxes).toBeGreaterThanOrEqual(5);
    expect(figures.map5095).toBe(figures.referenceMap5095);
  }, 240_000);

  it('refuses it against a different reference model and says why (exit 3)', async () => {
    const out = capture(process.stdout);
    const err = capture(process.stderr);
    expect(await detq('verify', '--engine', 'onnxruntime-cpu', '--model', MODEL_DYN, '--reference', MODEL_INT8_320, '--images', images)).toBe(EXIT_CODES.BAD_MODEL);
    expect(out()).toMatch(/^parity REFUSED on 4 images: \d+\/\d+ reference boxes matched at IoU >= 0\.9 \(\d+\.\d+ %\)/);
    expect(err()).toMatch(/refused by the parity gate against .*yolo11n_int8_320\.onnx: \d+ of \d+ reference boxes matched at IoU >= 0\.9 \(.* %, at least 97 % needed\)/);
  }, 240_000);

  it('needs --reference when the model is not an ONNX (exit 2)', async () => {
    const err = capture(process.stderr);
    expect(await detq('verify', '--engine', 'torch', '--model', 'm.torchscript', '--images', images)).toBe(EXIT_CODES.USAGE);
    expect(err()).toMatch(/--reference: needed when --model is not an ONNX/);
  });
});
