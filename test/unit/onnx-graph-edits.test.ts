import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { computeLetterbox, detectParamsSchema, sharedDir } from '@detq/core';
import { ModelInputError, OnnxRuntimeEngine, postprocess, postprocessBestClass, readOnnxMetadataProps, withBestClassOutput, withUint8HwcInput } from '@detq/inference';
import { FramePreparer } from '@detq/pipeline';
import { endToEndOnnx } from '../helpers/tiny-onnx';

// onnxruntime-cpu runs the model edited to take letterboxed uint8 HWC frames (the conversion to float
// CHW / 255 inside the graph) and to give each anchor's best class as a second output: it must give the
// original model's outputs and detections, keep the rest of the model, and refuse the inputs detq cannot
// feed with the message it gave before.
const MODEL = join(sharedDir(), 'models/yolo11n.onnx');
const options = { intraOpNumThreads: 2, graphOptimizationLevel: 'all' } as const;

async function letterboxed(file: string) {
  const { frame } = await new FramePreparer({ accepts: 'letterboxed', inputWidth: 640, inputHeight: 640 }).prepare(await readFile(file));
  if (frame.layout !== 'letterboxed') throw new Error('expected a letterboxed frame');
  return frame;
}

describe('withUint8HwcInput', () => {
  it('gives the outputs of the original model fed the float CHW / 255 tensor', async () => {
    const bytes = await readFile(MODEL);
    const frame = await letterboxed(join(sharedDir(), 'datasets/samples/images/bus.jpg'));
    const plane = 640 * 640;
    const chw = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) chw[c * plane + i] = frame.pixels[i * 3 + c]! / 255;

    const original = await ort.InferenceSession.create(MODEL, options);
    const edited = withUint8HwcInput(bytes);
    const session = await ort.InferenceSession.create(edited.model, options);
    try {
      expect(edited.dims).toEqual([1, 3, 640, 640]);
      expect(session.inputNames).toEqual(['detq_images_uint8_nhwc']);
      expect(session.inputMetadata[0]).toMatchObject({ isTensor: true, type: 'uint8', shape: [1, 640, 640, 3] });
      const want = (await original.run({ images: new ort.Tensor('float32', chw, [1, 3, 640, 640]) })).output0!;
      const got = (await session.run({ detq_images_uint8_nhwc: new ort.Tensor('uint8', frame.pixels, [1, 640, 640, 3]) })).output0!;
      expect(got.dims).toEqual(want.dims);
      const a = want.data as Float32Array;
      const b = got.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      expect(worst).toBe(0);
    } finally {
      await original.release();
      await session.release();
    }
  });

  it('copies every other field of the model unchanged: the metadata still reads the same', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'detq-onnx-edit-'));
    try {
      const path = join(dir, 'edited.onnx');
      await writeFile(path, withUint8HwcInput(await readFile(MODEL)).model);
      expect(await readOnnxMetadataProps(path)).toEqual(await readOnnxMetadataProps(MODEL));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an input that is not float32 [batch,3,height,width], and onnxruntime-cpu says which model and why', async () => {
    const fp16 = endToEndOnnx([1, 1, 1, 1, 1, 1], {}, { input: { elemType: 10, dims: ['batch', 3, 2, 2] } });
    const fourChannels = endToEndOnnx([1, 1, 1, 1, 1, 1], {}, { input: { elemType: 1, dims: ['batch', 4, 2, 2] } });
    expect(() => withUint8HwcInput(fp16)).toThrow(new ModelInputError('input type float16 is not float32'));
    expect(() => withUint8HwcInput(fourChannels)).toThrow(new ModelInputError('input shape [batch,4,2,2] is not [batch,3,height,width]'));
    const dir = await mkdtemp(join(tmpdir(), 'detq-onnx-edit-'));
    try {
      const path = join(dir, 'four.onnx');
      await writeFile(path, fourChannels);
      await expect(OnnxRuntimeEngine.load(path, { numClasses: 80, threads: 1 })).rejects.toMatchObject({
        code: 'BAD_MODEL',
        message: `${path} is not a YOLO detection model: input shape [batch,4,2,2] is not [batch,3,height,width]`,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads a negative dimension as a dynamic one', () => {
    expect(withUint8HwcInput(endToEndOnnx([1, 1, 1, 1, 1, 1], {}, { input: { elemType: 1, dims: [-1, 3, 2, 2] } })).dims).toEqual(['?', 3, 2, 2]);
  });
});

describe('withBestClassOutput', () => {
  it('leaves a model alone whose operator set predates GatherElements (opset 11)', () => {
    expect(withBestClassOutput(endToEndOnnx([1, 1, 1, 1, 1, 1], {}, { opset: 10 }))).toBeUndefined();
    expect(withBestClassOutput(endToEndOnnx([1, 1, 1, 1, 1, 1], {}, { opset: 11 }))?.output).toBe('detq_output0_best_class');
  });

  it('gives postprocessBestClass the detections postprocess finds in the full head, whatever conf and class filter', async () => {
    const edited = withBestClassOutput(withUint8HwcInput(await readFile(MODEL)).model)!;
    expect(edited.output).toBe('detq_output0_best_class');
    const session = await ort.InferenceSession.create(edited.model, options);
    const dir = join(sharedDir(), 'datasets/coco128/images/train2017');
    const files = (await readdir(dir)).sort().slice(0, 16);
    const lb = computeLetterbox(640, 480, 640, 640);
    let detections = 0;
    try {
      for (const f of files) {
        const frame = await letterboxed(join(dir, f));
        const out = await session.run({ detq_images_uint8_nhwc: new ort.Tensor('uint8', frame.pixels, [1, 640, 640, 3]) }, ['output0', edited.output]);
        const full = out.output0!;
        const best = out[edited.output]!;
        expect(best.dims).toEqual([1, 6, 8400]);
        for (const p of [{}, { conf: 0.001 }, { classes: [0, 2] }, { agnosticNms: true, conf: 0.1 }]) {
          const params = detectParamsSchema.parse(p);
          const want = postprocess(full.data as Float32Array, 0, 80, 8400, params, lb);
          const got = postprocessBestClass(best.data as Float32Array, 0, 8400, params, lb);
          expect(Array.from(got.rows)).toEqual(Array.from(want.rows));
          detections += want.count;
        }
      }
    } finally {
      await session.release();
    }
    expect(detections).toBeGreaterThan(100);
  });
});
