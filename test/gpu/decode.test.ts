import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeLetterbox, detectParamsSchema, type DetectParams, type ImageRecord } from '@detq/core';
import { evaluate } from '@detq/formats';
import { decodeImage, letterboxRgb } from '@detq/imaging';
import { loadNativeAddon, loadTorchEngine, type Engine, type Frame, type FrameOutcome, type NativeEngine } from '@detq/inference';
import { Batcher, FramePreparer, labelStream, matchBoxes, type LabelContext } from '@detq/pipeline';
import { FileStore } from '@detq/storage';
import { oddImages } from '../helpers/odd-jpegs';
import { cocoImageNames, COCO_IMAGES, COCO_LABELS, TORCHSCRIPT } from './gpu-fixtures';

// nvJPEG decoding in the addon against sharp: pixels (through the letterbox kernel, every EXIF
// orientation), then whole labelling runs on the torch engine with GPU-decoded vs CPU-decoded JPEGs.
const addon = loadNativeAddon();
const kernels = new addon.Kernels(0);
let odd: Record<string, Buffer>;
let engine: NativeEngine;

/** Counts the frames that reach the engine by layout, and the device's decode refusals. */
class CountingEngine implements Engine {
  readonly counts = { encoded: 0, decoded: 0, refused: 0 };
  constructor(private readonly inner: Engine) {}
  get info() {
    return this.inner.info;
  }
  async infer(frames: readonly Frame[], params: DetectParams): Promise<FrameOutcome[]> {
    for (const f of frames) this.counts[f.layout === 'encoded' ? 'encoded' : 'decoded']++;
    const out = await this.inner.infer(frames, params);
    this.counts.refused += out.filter((o) => o instanceof Error).length;
    return out;
  }
  dispose() {
    return Promise.resolve();
  }
}

async function label(files: { key: string; path: string }[], decode: 'auto' | 'cpu', params: DetectParams) {
  const counting = new CountingEngine(engine);
  const batcher = new Batcher(counting, { maxBatch: 32, maxWaitMs: 20 });
  const ctx: LabelContext = {
    store: new FileStore(),
    preparer: new FramePreparer(engine.info, undefined, decode),
    batcher,
    model: { name: 'yolo11n', sha256: '-', engine: 'torch', imgsz: [640, 640] },
    names: Array.from({ length: 80 }, (_, i) => String(i)),
    params,
    window: 96,
  };
  async function* sources() {
    for (const f of files) yield { key: f.key, uri: f.path };
  }
  const records: ImageRecord[] = [];
  for await (const { record } of labelStream(sources(), ctx)) records.push(record);
  await batcher.close();
  return { records, counts: counting.counts };
}

let dir: string;
beforeAll(async () => {
  expect(addon.buildInfo.nvjpeg, 'the addon must be built with nvJPEG here').toBeTruthy();
  odd = await oddImages();
  dir = join(tmpdir(), `detq-gpu-decode-${process.pid}`);
  await mkdir(dir, { recursive: true });
  for (const [n, b] of Object.entries(odd)) await writeFile(join(dir, n), b);
  engine = await loadTorchEngine(TORCHSCRIPT, { maxBatch: 32 });
}, 600_000);
afterAll(async () => {
  await kernels.dispose();
  await engine?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('nvJPEG + letterbox kernel', () => {
  test.each([1, 2, 3, 4, 5, 6, 7, 8])('orientation %i: the GPU letterbox of the JPEG matches the CPU letterbox of sharp\'s decode', async (o) => {
    const bytes = odd[`orientation-${o}.jpg`]!;
    const cpu = await decodeImage(bytes);
    const lb = computeLetterbox(cpu.width, cpu.height, 640, 640);
    const gpu = await kernels.letterbox(
      [{ jpeg: bytes, orientation: o, width: cpu.width, height: cpu.height, resizedWidth: lb.resizedWidth, resizedHeight: lb.resizedHeight, left: lb.left, top: lb.top, gain: lb.gain }],
      640, 640, false,
    );
    const ref = letterboxRgb(cpu.rgb, cpu.width, cpu.height, 640, 640).pixels;
    const plane = 640 * 640;
    let sum = 0;
    let worst = 0;
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(Math.round(gpu[c * plane + p]! * 255) - ref[p * 3 + c]!);
        sum += d;
        worst = Math.max(worst, d);
      }
    const mean = sum / (plane * 3);
    console.log(`orientation ${o}: nvJPEG vs sharp letterbox mean |diff| ${mean.toFixed(3)}, max ${worst}`);
    // nvJPEG and libjpeg-turbo differ in IDCT and chroma upsampling by a grey level or two; a wrong
    // orientation differs by tens.
    expect(mean).toBeLessThan(2);
  });
});

describe('GPU-decoded vs CPU-decoded labels (torch fp32)', () => {
  test('odd files: same boxes or the same error codes as the CPU path; only baseline JPEGs decode on the GPU', async () => {
    const files = Object.keys(odd).sort().map((key) => ({ key, path: join(dir, key) }));
    const params = detectParamsSchema.parse({});
    const gpu = await label(files, 'auto', params);
    const cpu = await label(files, 'cpu', params);
    expect(gpu.records.map((r) => [r.key, r.width, r.height, r.error?.code])).toEqual(cpu.records.map((r) => [r.key, r.width, r.height, r.error?.code]));
    const { matched, total } = matchBoxes(cpu.records, gpu.records, 0.9);
    console.log(`odd files: ${matched}/${total} CPU boxes matched; frames ${JSON.stringify(gpu.counts)}`);
    expect(total).toBeGreaterThan(20);
    expect(matched).toBe(total);
    // 8 orientations, grey and the three damaged baseline JPEGs leave encoded; progressive, CMYK and PNG are
    // decoded by sharp; the empty file never reaches the engine. The device's decoder refuses exactly the
    // damaged three (truncated, header only, stray end marker), and sharp gives them their error codes, so
    // they never come back decoded.
    expect(gpu.counts.encoded).toBe(12);
    expect(gpu.counts.refused).toBe(3);
    expect(gpu.counts.decoded).toBe(3);
    expect(cpu.counts.encoded).toBe(0);
  });

  test('coco128: >= 99% of boxes matched at IoU >= 0.9 with the same class, mAP50-95 within 0.005', async () => {
    const files = cocoImageNames().map((key) => ({ key, path: join(COCO_IMAGES, key) }));
    const gpu = await label(files, 'auto', detectParamsSchema.parse({}));
    const cpu = await label(files, 'cpu', detectParamsSchema.parse({}));
    const { matched, total } = matchBoxes(cpu.records, gpu.records, 0.9);
    console.log(`coco128: ${matched}/${total} CPU-decoded boxes matched by GPU-decoded ones (${((100 * matched) / total).toFixed(2)}%); frames ${JSON.stringify(gpu.counts)}`);
    const val = detectParamsSchema.parse({ conf: 0.001, multiLabel: true });
    const maps = [];
    for (const decode of ['auto', 'cpu'] as const) {
      const { records } = await label(files, decode, val);
      async function* all() {
        yield* records;
      }
      maps.push((await evaluate(all(), COCO_LABELS)).map5095);
    }
    console.log(`coco128 mAP50-95: GPU-decoded ${maps[0]!.toFixed(4)}, CPU-decoded ${maps[1]!.toFixed(4)}`);
    expect(gpu.counts.encoded).toBeGreaterThan(100);
    expect(Math.abs(maps[0]! - maps[1]!)).toBeLessThanOrEqual(0.005);
    expect(matched / total).toBeGreaterThanOrEqual(0.99);
  });
});
