// npm run bench:cpu — how close `detq label` (its defaults, end to end) comes to the bare ONNX Runtime
// session on this machine, measured in one run, on coco128 and on a mixed-size set (coco128 plus the same
// images upscaled to 12 MP at run time, in a temp folder, never committed). Prints both ratios.
//
// Engine-only is the bare session: pre-made float32 CHW tensors, nothing of detq in the timed loop (no
// uint8 -> float conversion, no NMS, no batcher), at the best batch for the machine. End to end is
// `detq label <folder> --out <tmp>` with its default flags, its rate read from summary.json (labelling
// time, model load excluded, as for the bare session). detq's default splits the threads between
// sessions (defaultCpuSessions), so two more columns compare like with like: the bare sessions in that
// same layout, and `detq label --sessions 1 --batch B` against the single bare session at its batch B.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { runSummarySchema, sharedDir } from '@detq/core';
import { main } from '@detq/cli';
import { cpuSessionOptions, defaultCpuSessions, sessionThreads } from '@detq/inference';
import { FramePreparer, resolveModel } from '@detq/pipeline';

const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const batches = (process.env.BENCH_BATCHES ?? '1,2,4,8').split(',').map(Number);
const coco = join(sharedDir(), 'datasets/coco128/images/train2017');
const work = join(tmpdir(), `detq-bench-cpu-${process.pid}`);
const TWELVE_MP = 12_000_000;

const model = await resolveModel();
const session = await ort.InferenceSession.create(model.path, cpuSessionOptions(threads));
const [imgH, imgW] = model.metadata.imgsz ?? [640, 640];
const plane = imgW * imgH;

/** Float32 CHW tensors of a folder's images, made before any timing. */
async function tensors(dir: string): Promise<Float32Array[]> {
  const preparer = new FramePreparer({ accepts: 'letterboxed', inputWidth: imgW, inputHeight: imgH });
  const out: Float32Array[] = [];
  for (const f of (await readdir(dir)).sort()) {
    const { frame } = await preparer.prepare(await readFile(join(dir, f)));
    if (frame.layout !== 'letterboxed') throw new Error(`${f}: expected a letterboxed frame`);
    const px = frame.pixels;
    const t = new Float32Array(3 * plane);
    for (let i = 0, p = 0; i < plane; i++, p += 3) {
      t[i] = px[p]! / 255;
      t[plane + i] = px[p + 1]! / 255;
      t[2 * plane + i] = px[p + 2]! / 255;
    }
    out.push(t);
  }
  return out;
}

/** Images per second of the bare session over the tensors, batch by batch (batches pre-assembled). */
async function bareSession(images: Float32Array[], batch: number): Promise<number> {
  const feeds: ort.Tensor[] = [];
  for (let i = 0; i < images.length; i += batch) {
    const n = Math.min(batch, images.length - i);
    const data = new Float32Array(n * 3 * plane);
    for (let k = 0; k < n; k++) data.set(images[i + k]!, k * 3 * plane);
    feeds.push(new ort.Tensor('float32', data, [n, 3, imgH, imgW]));
  }
  const input = session.inputNames[0]!;
  await session.run({ [input]: feeds[0]! }); // warm-up
  const t = performance.now();
  for (const f of feeds) await session.run({ [input]: f });
  return images.length / ((performance.now() - t) / 1000);
}

// One bare session on its own thread (ONNX Runtime's run blocks the thread that calls it): batch 1 over
// its share of the tensors, timed from a common start.
const SESSION_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require('onnxruntime-node');
(async () => {
  const { model, options, images, h, w } = workerData;
  const s = await ort.InferenceSession.create(model, options);
  const feeds = images.map((d) => ({ [s.inputNames[0]]: new ort.Tensor('float32', d, [1, 3, h, w]) }));
  await s.run(feeds[0]);
  parentPort.postMessage('ready');
  parentPort.once('message', async () => {
    for (const f of feeds) await s.run(f);
    parentPort.postMessage('done');
  });
})();`;

/** Images per second of `sessions` bare sessions side by side, the threads shared out as detq does. */
async function bareSessions(images: Float32Array[], sessions: number): Promise<number> {
  const workers = sessionThreads(threads, sessions).map((share, k) => new Worker(SESSION_THREAD, {
    eval: true,
    workerData: { model: model.path, options: cpuSessionOptions(share), images: images.filter((_, i) => i % sessions === k), h: imgH, w: imgW },
  }));
  const next = () => Promise.all(workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))));
  try {
    await next();
    const t = performance.now();
    for (const w of workers) w.postMessage('go');
    await next();
    return images.length / ((performance.now() - t) / 1000);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** `detq label` with its defaults (plus `flags`); its labelling rate from summary.json. */
async function detqLabel(dir: string, flags: string[] = []): Promise<number> {
  const out = join(work, `out-${Date.now()}`);
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = () => true;
  try {
    if ((await main(['node', 'detq', 'label', dir, '--out', out, ...flags])) !== 0) throw new Error(`detq label ${dir} failed`);
  } finally {
    process.stderr.write = write;
  }
  const summary = runSummarySchema.parse(JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')));
  await rm(out, { recursive: true, force: true });
  return summary.timing.imagesPerSecond;
}

/** coco128 plus each image upscaled to ~12 MP (same aspect), as JPEG files in a temp folder. */
async function mixedSet(): Promise<string> {
  const dir = join(work, 'mixed');
  await mkdir(dir, { recursive: true });
  await mkdir(join(work, 'warm-up'));
  for (const [i, f] of (await readdir(coco)).sort().entries()) {
    const bytes = await readFile(join(coco, f));
    if (i < 8) await sharp(bytes).toFile(join(work, 'warm-up', f));
    await sharp(bytes).toFile(join(dir, f));
    const { width = 640, height = 480 } = await sharp(bytes).metadata();
    const scale = Math.sqrt(TWELVE_MP / (width * height));
    await sharp(bytes)
      .resize(Math.round(width * scale), Math.round(height * scale), { kernel: 'linear' })
      .jpeg({ quality: 90 })
      .toFile(join(dir, f.replace(/\.jpg$/, '-12mp.jpg')));
  }
  return dir;
}

try {
  await mkdir(work, { recursive: true });
  const mixed = await mixedSet();
  await detqLabel(join(work, 'warm-up')); // page cache and JIT of the detq code path
  const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`detq bench:cpu — ${model.name}, ${threads} threads, onnxruntime ${ort.env.versions?.node ?? '?'}, load average ${load()}`);
  const sessions = defaultCpuSessions(threads);
  const rows: { name: string; bare: number; batch: number; layout: number; e2e: number; e2eOne: number }[] = [];
  // The batch sweep runs on coco128; every tensor is 640x640 whatever the source size, so the mixed set
  // reuses the best batch found there.
  let bestBatch = 0;
  for (const [name, dir] of [['coco128', coco], ['coco128 + 12 MP copies', mixed]] as const) {
    const images = await tensors(dir);
    let bare = { batch: 0, rate: 0 };
    for (const batch of bestBatch ? [bestBatch] : batches) {
      const rate = await bareSession(images, batch);
      console.log(`  ${name}: bare session batch ${batch}: ${rate.toFixed(1)} img/s`);
      if (rate > bare.rate) bare = { batch, rate };
    }
    bestBatch = bare.batch;
    const layout = sessions > 1 ? await bareSessions(images, sessions) : bare.rate;
    if (sessions > 1) console.log(`  ${name}: bare, ${sessions} sessions (${sessionThreads(threads, sessions).join('+')} threads) (detq's default layout), batch 1: ${layout.toFixed(1)} img/s`);
    images.length = 0;
    const e2e = await detqLabel(dir);
    console.log(`  ${name}: detq label: ${e2e.toFixed(1)} img/s`);
    const e2eOne = await detqLabel(dir, ['--sessions', '1', '--batch', String(bare.batch)]);
    console.log(`  ${name}: detq label --sessions 1 --batch ${bare.batch}: ${e2eOne.toFixed(1)} img/s`);
    rows.push({ name, bare: bare.rate, batch: bare.batch, layout, e2e, e2eOne });
  }
  const col = (v: string, n: number) => v.padStart(n);
  console.log(`\n${'set'.padEnd(24)} ${col('bare session', 18)} ${col('detq label', 11)} ${col('ratio', 6)}  | like for like: ${col(`bare ${sessions}x`, 8)} ${col('ratio', 6)} ${col('--sessions 1 --batch B', 22)} ${col('ratio', 6)}`);
  for (const r of rows)
    console.log(
      `${r.name.padEnd(24)} ${col(`${r.bare.toFixed(1)} (batch ${r.batch})`, 18)} ${col(r.e2e.toFixed(1), 11)} ${col((r.e2e / r.bare).toFixed(3), 6)}  |                ${col(r.layout.toFixed(1), 8)} ${col((r.e2e / r.layout).toFixed(3), 6)} ${col(r.e2eOne.toFixed(1), 22)} ${col((r.e2eOne / r.bare).toFixed(3), 6)}`,
    );
  console.log(`load average at the end ${load()} (other processes on this machine lower both rates; the ratio is taken within this run)`);
} finally {
  await session.release();
  await rm(work, { recursive: true, force: true });
}
