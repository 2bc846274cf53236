// npm run bench:cpu — engine-only vs end-to-end throughput of the embedded CPU path, measured in one run
// on this machine with the same threads and batch. Prints the ratio the README quotes.
import { readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectParamsSchema, sharedDir } from '@detq/core';
import { FramePreparer, openEngine, runLocal } from '@detq/pipeline';
import type { Frame } from '@detq/inference';

const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const batch = Number(process.env.BENCH_BATCH ?? 8);
const images = join(sharedDir(), 'datasets/coco128/images/train2017');
const params = detectParamsSchema.parse({});

// Engine-only: the ONNX session on pre-made letterboxed frames (decode is done before timing).
const { engine } = await openEngine({ engine: 'onnxruntime-cpu', threads, maxBatch: batch });
const preparer = new FramePreparer(engine.info);
const frames: Frame[] = [];
for (const f of (await readdir(images)).sort()) frames.push((await preparer.prepare(await readFile(join(images, f)))).frame);
await engine.infer(frames.slice(0, batch), params); // warm-up
let t = performance.now();
for (let i = 0; i < frames.length; i += batch) await engine.infer(frames.slice(i, i + batch), params);
const engineOnly = frames.length / ((performance.now() - t) / 1000);
await engine.dispose();

// End-to-end: `detq label` on the same files (read, decode, letterbox, infer, NMS, write JSONL).
const out = join(tmpdir(), `detq-bench-${process.pid}`);
await runLocal({ input: images, out, params, batch, threads, formats: ['jsonl'], previews: 0 }); // warm-up (page cache, JIT)
const summary = await runLocal({ input: images, out, params, batch, threads, formats: ['jsonl'], previews: 0 });
await rm(out, { recursive: true, force: true });

const rows = [
  ['engine-only (onnxruntime-cpu, pre-made tensors)', engineOnly],
  ['end-to-end (detq label, JPEG files)', summary.timing.imagesPerSecond],
] as const;
console.log(`detq bench:cpu — ${frames.length} coco128 images, ${threads} threads, batch ${batch}, ${engine.info.runtimeVersion}`);
for (const [name, v] of rows) console.log(`${name.padEnd(50)} ${v.toFixed(1).padStart(7)} img/s`);
console.log(`${'ratio end-to-end / engine-only'.padEnd(50)} ${(summary.timing.imagesPerSecond / engineOnly).toFixed(3).padStart(7)}`);
