import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectParamsSchema, type ImageRecord } from '@detq/core';
import { evaluate } from '@detq/formats';

const base = { model: { name: 'm', sha256: 'x', engine: 'onnxruntime-cpu' as const, imgsz: [640, 640] as [number, number] }, params: detectParamsSchema.parse({}) };
async function* recs(list: ImageRecord[]) {
  yield* list;
}

describe('evaluate', () => {
  // Ultralytics' 101-point trapezoidal AP gives a perfect detector 0.995, not 1.
  it('gives mAP 0.995 for perfect predictions and penalises a miss and a false positive', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'detq-eval-'));
    await writeFile(join(dir, 'a.txt'), '0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.1\n');
    const perfect: ImageRecord = {
      key: 'img/a.jpg', width: 100, height: 100, ...base,
      detections: [
        { box: [25, 25, 75, 75], confidence: 0.9, class_id: 0, class_name: 'a' },
        { box: [20, 20, 30, 30], confidence: 0.8, class_id: 1, class_name: 'b' },
      ],
    };
    const good = await evaluate(recs([perfect]), dir);
    expect(good.map50).toBeCloseTo(0.995, 6);
    expect(good.map5095).toBeCloseTo(0.995, 6);
    expect(good.instances).toBe(2);

    const worse: ImageRecord = { ...perfect, detections: [{ box: [25, 25, 75, 75], confidence: 0.9, class_id: 0, class_name: 'a' }, { box: [60, 60, 90, 90], confidence: 0.95, class_id: 1, class_name: 'b' }] };
    const bad = await evaluate(recs([worse]), dir);
    expect(bad.map50).toBeCloseTo(0.995 / 2, 6); // class 0 perfect, class 1 missed
    expect(bad.perClass.map((c) => c.classId)).toEqual([0, 1]);
  });
});
