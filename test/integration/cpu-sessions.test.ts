import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectParamsSchema, sharedDir } from '@detq/core';
import { defaultCpuSessions, OnnxRuntimeEngine } from '@detq/inference';
import { Batcher, FramePreparer } from '@detq/pipeline';

// onnxruntime-cpu splits its threads between sessions that run batches side by side: the layout must
// not change a single detection.
const MODEL = join(sharedDir(), 'models/yolo11n-dyn.onnx');

describe('onnxruntime-cpu sessions', () => {
  it('defaults to one session per thread up to 4, then one per 4 threads', () => {
    expect([1, 2, 3, 4, 5, 8, 16, 32].map(defaultCpuSessions)).toEqual([1, 2, 3, 4, 2, 2, 4, 8]);
  });

  it('two 1-thread sessions give the detections of one 2-thread session, batch by batch in flight at once', async () => {
    const dir = join(sharedDir(), 'datasets/coco128/images/train2017');
    const files = (await readdir(dir)).sort().slice(0, 12);
    const params = detectParamsSchema.parse({});
    const results: unknown[][] = [];
    for (const sessions of [1, 2]) {
      const engine = await OnnxRuntimeEngine.load(MODEL, { numClasses: 80, threads: 2, sessions, maxBatch: 2 });
      try {
        expect(engine.info.parallelBatches).toBe(sessions);
        const preparer = new FramePreparer(engine.info);
        const batcher = new Batcher(engine, { maxBatch: 2, maxWaitMs: 5 });
        const frames = await Promise.all(files.map(async (f) => (await preparer.prepare(await readFile(join(dir, f)))).frame));
        const out = await Promise.all(frames.map((f) => batcher.detect(f, params)));
        await batcher.close();
        results.push(out.map((d) => Array.from(d.rows)));
      } finally {
        await engine.dispose();
      }
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[0]!.flat().length).toBeGreaterThan(6 * 20);
  });

  it('dispose while batches run lets them finish instead of aborting the process, then refuses new ones', async () => {
    const engine = await OnnxRuntimeEngine.load(MODEL, { numClasses: 80, threads: 2, sessions: 2 });
    const { frame } = await new FramePreparer(engine.info).prepare(await readFile(join(sharedDir(), 'datasets/samples/images/bus.jpg')));
    const params = detectParamsSchema.parse({});
    const running = [engine.infer([frame], params), engine.infer([frame], params), engine.infer([frame], params)];
    await engine.dispose();
    const settled = await Promise.allSettled(running);
    expect(settled.map((s) => (s.status === 'rejected' ? String(s.reason) : s.status))).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    await expect(engine.infer([frame], params)).rejects.toThrow('engine disposed');
  });
});
