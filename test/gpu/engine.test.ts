import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { detectParamsSchema } from '@detq/core';
import { loadNativeAddon, loadTorchEngine, type Frame, type FrameDetections, type FrameOutcome, type NativeEngine } from '@detq/inference';
import { cocoImageNames, decodeCoco, TORCHSCRIPT } from './gpu-fixtures';

// The native machinery through the torch backend: queues under concurrency, errors as rejections, dispose.
const params = detectParamsSchema.parse({});
// Decoded frames always give detections (only encoded ones can give a DeviceDecodeError).
const dets = (o: FrameOutcome | undefined): FrameDetections => {
  if (!o || o instanceof Error) throw o ?? new Error('no outcome');
  return o;
};
let engine: NativeEngine;
let frames: Frame[];

beforeAll(async () => {
  engine = await loadTorchEngine(TORCHSCRIPT, { maxBatch: 4 });
  frames = (await Promise.all(cocoImageNames(8).map(decodeCoco))).map((d) => ({ layout: 'rgb', pixels: d.rgb, width: d.width, height: d.height }));
});
afterAll(() => engine?.dispose());

describe('torch engine', () => {
  test('reports itself as a GPU engine taking rgb frames', () => {
    expect(engine.info).toMatchObject({ kind: 'torch', accepts: 'rgb', precision: 'fp32', inputWidth: 640, inputHeight: 640, numClasses: 80 });
    expect(engine.info.runtimeVersion).toMatch(/^libtorch /);
    expect(engine.info.outputLayout).toBe('raw');
  });

  test('runs at the padded batch sizes of its range, never above maxBatch', async () => {
    const model = await loadNativeAddon().loadModel({ backend: 'torch', path: TORCHSCRIPT, maxBatch: 20, batchSizes: [1, 2, 4, 8, 16, 20] });
    expect(model.info).toMatchObject({ outputLayout: 'raw', numClasses: 80, maxBatch: 20, batchSizes: [1, 2, 4, 8, 16, 20], profiles: 0 });
    await expect(loadNativeAddon().loadModel({ backend: 'torch', path: TORCHSCRIPT, maxBatch: 8, batchSizes: [1, 16] })).rejects.toThrow(
      /batch sizes 1\.\.16 are outside the model's batch range 1\.\.8/,
    );
  });

  test('gives the same detections under many concurrent infer() calls as one at a time', async () => {
    const sequential: FrameDetections[] = [];
    for (const f of frames) sequential.push(dets((await engine.infer([f], params))[0]));
    const concurrent = await Promise.all(Array.from({ length: 24 }, (_, i) => engine.infer([frames[i % frames.length]!], params)));
    concurrent.forEach(([o], i) => {
      const want = sequential[i % frames.length]!;
      const d = dets(o);
      expect(d.count).toBe(want.count);
      expect(Array.from(d.rows)).toEqual(Array.from(want.rows));
    });
    // A batch larger than maxBatch is split across contexts and comes back in order.
    const batched = await engine.infer(frames, params);
    batched.forEach((d, i) => expect(dets(d).count).toBe(sequential[i]!.count));
  });

  test('a model that cannot load is a rejected promise with the reason', async () => {
    await expect(loadNativeAddon().loadModel({ backend: 'torch', path: '/nonexistent.torchscript' })).rejects.toThrow(/cannot load TorchScript/);
  });

  test('infer after dispose rejects instead of crashing', async () => {
    const model = await loadNativeAddon().loadModel({ backend: 'torch', path: TORCHSCRIPT });
    const ctx = model.createContext();
    await ctx.dispose();
    await expect(ctx.infer([], { ...params })).rejects.toThrow(/disposed/);
  });
});
