import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectParamsSchema, EngineFault, ImageError } from '@detq/core';
import type { Engine, Frame } from '@detq/inference';
import { Batcher, FramePreparer, openEngine } from '@detq/pipeline';
import { cocoImageNames, COCO_IMAGES } from '../helpers/fixtures';

/**
 * The batcher's fault rules against the real ONNX Runtime engine, wrapped to inject faults: which
 * failures belong to one image (INFERENCE_FAILED) and which to the engine (EngineFault, the chunk is
 * retried elsewhere), and the per-call deadline.
 */
describe('batcher faults', () => {
  let engine: Engine;
  let frames: Frame[];
  const params = detectParamsSchema.parse({});

  beforeAll(async () => {
    engine = (await openEngine({ threads: 1, maxBatch: 4 })).engine;
    const preparer = new FramePreparer(engine.info);
    frames = await Promise.all(cocoImageNames(4).map(async (n) => (await preparer.prepare(await readFile(join(COCO_IMAGES, n)))).frame));
  });
  afterAll(() => engine?.dispose());

  const wrap = (infer: Engine['infer']): Engine => ({ info: engine.info, infer, dispose: async () => {} });

  it('a frame the engine fails on alone is that image INFERENCE_FAILED; the others of its batch are labelled', async () => {
    const poison = frames[2]!;
    const batcher = new Batcher(
      wrap((batch, p) => (batch.includes(poison) ? Promise.reject(new Error('injected: bad input tensor')) : engine.infer(batch, p))),
      { maxBatch: 4, maxWaitMs: 50 },
    );
    const results = await Promise.allSettled(frames.map((f) => batcher.detect(f, params)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const err = (results[2] as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(ImageError);
    expect(err.code).toBe('INFERENCE_FAILED');
    await batcher.close();
  });

  it('an engine that fails every call is an EngineFault for every frame, never an image error', async () => {
    const batcher = new Batcher(wrap(() => Promise.reject(new Error('injected: session thread is gone'))), { maxBatch: 4, maxWaitMs: 50 });
    const results = await Promise.allSettled(frames.map((f) => batcher.detect(f, params)));
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(EngineFault);
    await batcher.close();
    await expect(batcher.detect(frames[0]!, params)).rejects.toBeInstanceOf(EngineFault); // closed batcher
  });

  it('an engine call past its deadline marks the engine hung: its frames and every later one get an EngineFault', async () => {
    let calls = 0;
    const batcher = new Batcher(
      wrap((batch, p) => (++calls === 2 ? new Promise(() => {}) : engine.infer(batch, p))),
      { maxBatch: 1, maxWaitMs: 0, maxInFlight: 1, callTimeoutMs: 1000 },
    );
    await expect(batcher.detect(frames[0]!, params)).resolves.toBeDefined();
    await expect(batcher.detect(frames[1]!, params)).rejects.toThrow(/longer than 1000 ms/);
    await expect(batcher.detect(frames[2]!, params)).rejects.toBeInstanceOf(EngineFault);
    expect(calls).toBe(2);
    await batcher.close();
  });
});
