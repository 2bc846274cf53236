import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectParamsSchema, type DetectParams } from '@detq/core';
import type { Engine, EngineInfo, Frame, FrameOutcome } from '@detq/inference';
import { Batcher, FramePreparer, InFlightBytes, labelStream, openEngine, type LabelContext, type LabelSource, type OpenedEngine } from '@detq/pipeline';
import { FileStore, type ReadOptions } from '@detq/storage';
import { MODEL_DYN, tempDir } from '../helpers/fixtures';

// labelStream's byte budget (windowBytes) must hold from the moment an image starts, not once its read
// lands: starts come in bursts (a listing yields faster than files are read), and a count window of 192
// 100 MP files read at once is gigabytes. A worker's concurrent chunks share one budget.
const IMAGES = 24;
const LETTERBOXED = 640 * 640 * 3; // the CPU engine's frame, weighed with the file bytes

let dir: string;
let opened: OpenedEngine;
let fileBytes: number;

beforeAll(async () => {
  dir = await tempDir('detq-window-');
  await mkdir(join(dir, 'in'));
  const noise = Buffer.from(Array.from({ length: 400 * 300 * 3 }, (_, i) => (i * 2654435761) >>> 24));
  const jpeg = await sharp(noise, { raw: { width: 400, height: 300, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  fileBytes = jpeg.length;
  for (let i = 0; i < 2 * IMAGES; i++) await writeFile(join(dir, 'in', `${i}.jpg`), jpeg);
  opened = await openEngine({ engine: 'onnxruntime-cpu', model: MODEL_DYN, maxBatch: 4, threads: 2 });
}, 120_000);

afterAll(async () => {
  await opened?.engine.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Images holding memory, across every stream using it: from the start of the read (file bytes) until the
 * engine answers (the frame), after which only the small record is left.
 */
class InFlightImages extends FileStore implements Engine {
  readonly info: EngineInfo;
  now = 0;
  most = 0;
  constructor(private readonly inner: Engine) {
    super();
    this.info = inner.info;
  }
  override get(uri: string, options?: ReadOptions): Promise<Buffer> {
    this.most = Math.max(this.most, ++this.now);
    return super.get(uri, options);
  }
  async infer(frames: readonly Frame[], params: DetectParams): Promise<FrameOutcome[]> {
    const out = await this.inner.infer(frames, params);
    this.now -= frames.length;
    return out;
  }
  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Labels IMAGES images from `first` on. With `tooLarge`, each is followed by one listed above
 * maxObjectBytes, and the records refused with FILE_TOO_LARGE are counted in it.
 */
async function label(store: InFlightImages, first: number, ctx: Partial<LabelContext>, tooLarge?: { refused: number }): Promise<number> {
  const batcher = new Batcher(store, { maxBatch: 4, maxWaitMs: 5 });
  async function* sources(): AsyncGenerator<LabelSource> {
    for (let i = first; i < first + IMAGES; i++) {
      yield { key: `${i}.jpg`, uri: join(dir, 'in', `${i}.jpg`) };
      if (tooLarge) yield { key: `huge-${i}.jpg`, uri: join(dir, 'in', 'absent.jpg'), size: 1e12 };
    }
  }
  let ok = 0;
  const full: LabelContext = {
    store,
    preparer: new FramePreparer(store.info),
    batcher,
    model: opened.model,
    names: opened.names,
    params: detectParamsSchema.parse({}),
    window: 16,
    ...ctx,
  };
  for await (const { record } of labelStream(sources(), full)) {
    if (!record.error) ok++;
    else if (tooLarge && record.error.code === 'FILE_TOO_LARGE') tooLarge.refused++;
  }
  await batcher.close();
  return ok;
}

describe('bytes in flight', () => {
  it('stay under windowBytes from the moment each image starts (one image over it at most)', async () => {
    const weight = fileBytes + LETTERBOXED;
    const store = new InFlightImages(opened.engine);
    expect(await label(store, 0, { windowBytes: Math.floor(5.5 * weight) })).toBe(IMAGES);
    // 5 images fit the budget; the sixth is let through and then the stream waits. The count window (16) never binds.
    expect(store.most).toBe(6);
  }, 60_000);

  it('stay under one budget for streams sharing a tally (a worker chunks), whatever their number', async () => {
    const weight = fileBytes + LETTERBOXED;
    const store = new InFlightImages(opened.engine);
    const shared = new InFlightBytes();
    const ctx = { windowBytes: Math.floor(5.5 * weight), inFlightBytes: shared };
    expect(await Promise.all([label(store, 0, ctx), label(store, IMAGES, ctx)])).toEqual([IMAGES, IMAGES]);
    // Each stream may let one image through over the budget; two streams with a budget each would hold 12.
    expect(store.most).toBeGreaterThanOrEqual(5);
    expect(store.most).toBeLessThanOrEqual(7);
    expect(shared.bytes).toBe(0);
  }, 60_000);

  it('are not taken by images refused before their read (FILE_TOO_LARGE)', async () => {
    const weight = fileBytes + LETTERBOXED;
    const store = new InFlightImages(opened.engine);
    const tooLarge = { refused: 0 };
    // What the tally was asked to hold: a refused image's listed terabyte, even for a moment, would show.
    class Watched extends InFlightBytes {
      reserved = 0;
      most = 0;
      override reserve(listedSize: number | undefined, budget: number): number {
        const counted = super.reserve(listedSize, budget);
        this.reserved++;
        this.most = Math.max(this.most, this.bytes);
        return counted;
      }
    }
    const shared = new Watched();
    const budget = Math.floor(5.5 * weight);
    expect(await label(store, 0, { windowBytes: budget, inFlightBytes: shared, maxObjectBytes: 1e9 }, tooLarge)).toBe(IMAGES);
    expect(tooLarge.refused).toBe(IMAGES);
    // One reservation per image read, none for the refused ones.
    expect(shared.reserved).toBe(IMAGES);
    expect(store.most).toBe(6);
    // The highest count is the start's: the first two images, with nothing seen yet, reserve the whole budget each.
    expect(shared.most).toBe(2 * budget);
    expect(shared.bytes).toBe(0);
  }, 60_000);

  it('are guessed, for an image with no listed size, from the latest 64 images only', () => {
    const tally = new InFlightBytes();
    expect(tally.reserve(undefined, 1000)).toBe(1000); // nothing seen: the whole budget
    tally.settle(1000, 900); // one huge image
    expect(tally.reserve(undefined, 1000)).toBe(900);
    tally.settle(900, 10);
    for (let i = 0; i < 62; i++) tally.settle(tally.reserve(undefined, 1000), 10);
    expect(tally.reserve(undefined, 1000)).toBe(900); // still among the latest 64
    tally.settle(900, 10);
    expect(tally.reserve(undefined, 1000)).toBe(10);
    expect(tally.reserve(500, 1000)).toBe(500); // a listed size is taken as it is
    tally.settle(10, 0); // never read: teaches nothing
    tally.settle(500, 0);
    expect(tally.reserve(undefined, 1000)).toBe(10);
    tally.settle(10, 10);
    expect(tally.bytes).toBe(0);
  });
});
