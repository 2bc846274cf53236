import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeLetterbox, detectParamsSchema } from '@detq/core';
import { readJpegHeader } from '@detq/imaging';
import { loadNativeAddon, loadTorchEngine, type Frame, type FrameDetections, type FrameOutcome, type NativeEngine } from '@detq/inference';
import type { NativeDetections, NativeFrame } from '@detq/native';
import { COCO_IMAGES, cocoImageNames, decodeCoco, TORCHSCRIPT } from './gpu-fixtures';

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
  // Two contexts with three batches each (at batch 4 the default is two with two): calls spread over
  // them, several on each, must still come back in order.
  engine = await loadTorchEngine(TORCHSCRIPT, { maxBatch: 4, contexts: 2, batchesPerContext: 3 });
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

  // A context stages and decodes the next batch while up to batchesInFlight - 1 earlier ones run the
  // network (one staging slot each): queued batches must still come back exactly as one at a time would
  // give them, in submission order, with a failing batch and a non-pipelined call (benchmark) among them.
  test.each([1, 2, 3, 4])('one context with %i batches in flight settles queued batches in submission order with the one-at-a-time result', async (inFlight) => {
    expect(loadNativeAddon().batchesPerContext).toBe(3);
    expect(loadNativeAddon().maxBatchesPerContext).toBe(4);
    const model = await loadNativeAddon().loadModel({ backend: 'torch', path: TORCHSCRIPT, maxBatch: 4, batchSizes: [1, 2, 4] });
    const ctx = model.createContext(undefined, inFlight);
    try {
      const geometry = (width: number, height: number) => ({ width, height, ...computeLetterbox(width, height, 640, 640) });
      const rgb: NativeFrame[] = frames.map((f) => ({ ...geometry(f.width, f.height), pixels: (f as { pixels: Uint8Array }).pixels }));
      const jpeg: NativeFrame[] = await Promise.all(
        cocoImageNames(8).map(async (name) => {
          const bytes = await readFile(join(COCO_IMAGES, name));
          const h = readJpegHeader(bytes)!;
          return { ...geometry(h.width, h.height), orientation: h.orientation, jpeg: bytes };
        }),
      );
      // 12 batches of 1-4 frames, RGB and JPEG mixed.
      const batches = Array.from({ length: 12 }, (_, i) => Array.from({ length: 1 + (i % 4) }, (_, k) => ((i + k) % 2 ? jpeg : rgb)[(i * 3 + k) % 8]!));
      const sequential: NativeDetections[][] = [];
      for (const b of batches) sequential.push(await ctx.infer(b, params));
      expect(sequential.flat().filter((d) => d.decodeError === undefined && d.count > 0).length).toBeGreaterThan(20);
      // A batch of one cut-off JPEG: refused before any device memory; its launch takes a slot but leaves it
      // free (nothing reaches the network), and it still counts among the batches in flight.
      const whole = (jpeg[0] as { jpeg: Uint8Array }).jpeg;
      const cut: NativeFrame = { ...jpeg[0]!, jpeg: whole.subarray(0, whole.length >> 1) };
      const [cutAlone] = await ctx.infer([cut], params);
      expect(cutAlone?.decodeError).toMatch(/no end-of-image marker/);

      // Every call in submission order, each with the label it settles under.
      const calls: { label: string; run: () => Promise<unknown> }[] = [];
      batches.forEach((b, i) => {
        calls.push({ label: `infer ${i}`, run: () => ctx.infer(b, params) });
        if (i === 2) calls.push({ label: 'cut', run: () => ctx.infer([cut], params) });
        if (i === 4) calls.push({ label: 'bad', run: () => ctx.infer([{ ...rgb[0]!, left: 600 }], params).catch((e: Error) => e) });
        if (i === 7) calls.push({ label: 'benchmark', run: () => ctx.benchmark(rgb.slice(0, 2), 2, params) });
      });
      const settled: string[] = [];
      const out = await Promise.all(calls.map(({ label, run }) => run().then((r) => (settled.push(label), r))));
      expect(settled).toEqual(calls.map((c) => c.label));
      const at = (label: string) => out[calls.findIndex((c) => c.label === label)];
      expect((at('bad') as Error).message).toMatch(/frame 0: letterbox .* does not fit the 640x640 input/);
      expect((at('benchmark') as Float64Array).length).toBe(2);
      expect(at('cut')).toEqual([cutAlone]);
      batches.forEach((_, i) => expect(at(`infer ${i}`)).toEqual(sequential[i]));
    } finally {
      await ctx.dispose();
    }
  });

  // A padded batch size's first run is eager, its second is captured, later ones replay the graph. A
  // replay must give what the eager run gave on the same frames (not the last capture's output), at
  // every padded size, and the same boxes as a context that never captures.
  test('CUDA graph replays give the eager results at every padded batch size', async () => {
    const addon = loadNativeAddon();
    const load = (cudaGraphs: boolean) => addon.loadModel({ backend: 'torch', path: TORCHSCRIPT, maxBatch: 4, batchSizes: [1, 2, 4], cudaGraphs });
    const [graphs, eager] = await Promise.all([load(true), load(false)]);
    expect(graphs.info.cudaGraphs).toBe(true);
    expect(eager.info.cudaGraphs).toBe(false);
    const [g, e] = [graphs.createContext(), eager.createContext()];
    try {
      const native: NativeFrame[] = frames.map((f) => ({ width: f.width, height: f.height, ...computeLetterbox(f.width, f.height, 640, 640), pixels: (f as { pixels: Uint8Array }).pixels }));
      for (const size of [1, 2, 3, 4]) {
        const a = native.slice(0, size);
        const b = native.slice(4, 4 + size);
        // a: eager; b: captured; then each replayed, twice.
        const runs = [];
        for (const batch of [a, b, a, b, a]) runs.push(await g.infer(batch, params));
        const [firstA, firstB] = runs;
        expect(firstA).not.toEqual(firstB);
        expect(runs).toEqual([firstA, firstB, firstA, firstB, firstA]);
        for (const [batch, got] of [[a, firstA], [b, firstB]] as const) {
          const want = await e.infer(batch, params);
          got!.forEach((d, i) => {
            expect(d.count).toBe(want[i]!.count);
            Array.from(d.rows).forEach((v, k) => expect(v).toBeCloseTo(want[i]!.rows[k]!, 2));
          });
        }
      }
      // Batches in flight on the context (the default three), each replaying another graph of the shared
      // pool: a replay must not overwrite an earlier batch's output before its post-processing has read it.
      const four = native.slice(0, 4);
      const one = native.slice(4, 5);
      const [wantFour, wantOne] = [await g.infer(four, params), await g.infer(one, params)];
      const queued = await Promise.all([four, one, four, one, four, one].map((b) => g.infer(b, params)));
      expect(queued).toEqual([wantFour, wantOne, wantFour, wantOne, wantFour, wantOne]);
    } finally {
      await Promise.all([g.dispose(), e.dispose()]);
    }
  });

  // Each batch logs a few debug lines; unless DETQ_DEBUG asks for them they must not cost the JS thread a call.
  test('the addon drops log messages above the level its logger was set with', async () => {
    const addon = loadNativeAddon();
    const levels: string[] = [];
    const settle = () => new Promise((r) => setTimeout(r, 100));
    try {
      addon.setLogger((level) => levels.push(level), 'warn');
      await engine.infer(frames.slice(0, 2), params);
      await settle();
      expect(levels).toEqual([]);
      addon.setLogger((level) => levels.push(level), 'debug');
      await engine.infer(frames.slice(0, 2), params);
      await settle();
      expect(levels).toContain('debug');
      expect(() => addon.setLogger(() => undefined, 'verbose' as never)).toThrow(/level must be 'error', 'warn', 'info' or 'debug'/);
    } finally {
      addon.setLogger((level, message) => process.stderr.write(`detq: native ${level}: ${message}\n`), 'warn');
    }
  });

  test('a model that cannot load is a rejected promise with the reason', async () => {
    await expect(loadNativeAddon().loadModel({ backend: 'torch', path: '/nonexistent.torchscript' })).rejects.toThrow(/cannot load TorchScript/);
  });

  test('a context with no staging slot or more than the addon allows is refused when created', async () => {
    const model = await loadNativeAddon().loadModel({ backend: 'torch', path: TORCHSCRIPT, maxBatch: 4, batchSizes: [1, 2, 4] });
    for (const bad of [0, 5, 2.5, 2 ** 32 + 2, Number.NaN, '3'])
      expect(() => model.createContext(undefined, bad as number)).toThrow('batchesInFlight must be an integer from 1 to 4');
  });

  // With N batches in flight the thread launches N queued batches before it collects the first: the
  // overlap itself, seen in the addon's debug lines (a benchmark holds the thread while the rest queue).
  test.each([1, 2, 3, 4])('a context with %i batches in flight launches that many before collecting the first', async (inFlight) => {
    const addon = loadNativeAddon();
    const model = await addon.loadModel({ backend: 'torch', path: TORCHSCRIPT, maxBatch: 4, batchSizes: [1, 2, 4] });
    const ctx = model.createContext(undefined, inFlight);
    const lines: string[] = [];
    try {
      await ctx.infer([], params);
      const rgb: NativeFrame[] = frames.slice(0, 1).map((f) => ({ width: f.width, height: f.height, ...computeLetterbox(f.width, f.height, 640, 640), pixels: (f as { pixels: Uint8Array }).pixels }));
      addon.setLogger((_, message) => lines.push(message), 'debug');
      await Promise.all([ctx.benchmark(rgb, 20, params), ...Array.from({ length: 6 }, () => ctx.infer(rgb, params))]);
      await new Promise((r) => setTimeout(r, 100));
      const steps = lines.flatMap((l) => (/^launch \d+ frames/.test(l) ? ['L'] : /^collect: waited/.test(l) ? ['C'] : [])).join('');
      expect(steps.slice(0, inFlight + 1)).toBe(`${'L'.repeat(inFlight)}C`);
      expect(steps.replace(/[^L]/g, '')).toHaveLength(6);
    } finally {
      addon.setLogger((level, message) => process.stderr.write(`detq: native ${level}: ${message}\n`), 'warn');
      await ctx.dispose();
    }
  });

  test('infer after dispose rejects instead of crashing', async () => {
    const model = await loadNativeAddon().loadModel({ backend: 'torch', path: TORCHSCRIPT });
    const ctx = model.createContext();
    await ctx.dispose();
    await expect(ctx.infer([], { ...params })).rejects.toThrow(/disposed/);
  });
});
