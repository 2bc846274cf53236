// npm run bench:feed — how many images a second the JS side of `detq label` can feed a GPU engine: the
// labelling stream (file reads, JPEG header reads, the in-flight window), the batcher and the JSONL writer,
// with the settings `detq label --engine torch --batch 32` uses, in front of a stand-in engine that takes
// encoded JPEG frames and answers one macrotask later with seven boxes a frame. Nothing of the native addon
// runs, so this runs anywhere; on a GPU machine, set beside the engine-only rate of `detq bench`, it says
// whether the JS side or the execution contexts hold end-to-end labelling back.
// BENCH_READS (default 20,480): coco128 listed to that many reads. BENCH_PARALLEL_BATCHES (default 3, one
// context with the addon's batchesPerContext): the batches in flight the stand-in engine reports.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectParamsSchema, sharedDir } from '@detq/core';
import { OutputWriter } from '@detq/formats';
import type { Engine, Frame, FrameOutcome } from '@detq/inference';
import { Batcher, FramePreparer, labelStream, engineWindow, type LabelSource } from '@detq/pipeline';
import { FileStore } from '@detq/storage';

const reads = Number(process.env.BENCH_READS ?? 20_480);
const parallelBatches = Number(process.env.BENCH_PARALLEL_BATCHES ?? 3);
const batch = 32;
const coco = join(sharedDir(), 'datasets/coco128/images/train2017');
const files = (await readdir(coco)).filter((f) => f.endsWith('.jpg')).sort().map((f) => join(coco, f));

const BOXES = 7;
const engine: Engine = {
  info: {
    kind: 'torch',
    precision: 'fp16',
    inputWidth: 640,
    inputHeight: 640,
    maxBatch: batch,
    accepts: 'rgb',
    encodedFormats: ['jpeg'],
    parallelBatches,
    device: 'stand-in',
    runtimeVersion: 'none',
    numClasses: 80,
    outputLayout: 'raw',
  },
  async infer(frames: readonly Frame[]): Promise<FrameOutcome[]> {
    await new Promise((resolve) => setImmediate(resolve));
    return frames.map(() => {
      const rows = new Float32Array(BOXES * 6);
      for (let i = 0; i < BOXES; i++) rows.set([10.5 + i, 20.25, 100.75, 200.125, 0.87654, i], i * 6);
      return { rows, count: BOXES };
    });
  },
  async dispose() {},
};

async function* sources(): AsyncGenerator<LabelSource> {
  for (let i = 0; i < reads; i++) {
    const uri = files[i % files.length]!;
    yield { key: `${i}/${uri.slice(coco.length + 1)}`, uri };
  }
}

const store = new FileStore();
const out = await mkdtemp(join(tmpdir(), 'detq-bench-feed-'));
try {
  const names = Array.from({ length: 80 }, (_, i) => `class${i}`);
  const params = detectParamsSchema.parse({});
  const batcher = new Batcher(engine, { maxBatch: batch, maxWaitMs: 50 });
  const writer = await OutputWriter.open({ outUri: out, formats: ['jsonl'], names, store });
  const started = performance.now();
  const cpu = process.cpuUsage();
  let labelled = 0;
  const stream = labelStream(sources(), {
    store,
    preparer: new FramePreparer(engine.info),
    batcher,
    model: { name: 'stand-in', sha256: '0'.repeat(64), engine: 'torch', imgsz: [640, 640] },
    names,
    params,
    window: engineWindow(batch, engine.info),
  });
  for await (const { record } of stream) {
    if (record.error) throw new Error(`${record.key}: ${record.error.code} ${record.error.message}`);
    await writer.add(record);
    labelled++;
  }
  await writer.finish();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  await batcher.close();
  const stats = batcher.stats();
  console.log(
    `JS feed: ${labelled} COCO-size JPEG files in ${seconds.toFixed(1)} s = ${(labelled / seconds).toFixed(0)} img/s; ` +
      `process CPU ${((used.user + used.system) / labelled).toFixed(0)} us/image; ${stats.batches} batches, fill ${stats.fill.toFixed(2)}`,
  );
} finally {
  await rm(out, { recursive: true, force: true });
}
