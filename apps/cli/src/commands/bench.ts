import { readdir, readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import sharp from 'sharp';
import { detectParamsSchema, FatalError, sharedDir, type EngineKind } from '@detq/core';
import { NativeEngine, type Engine, type Frame } from '@detq/inference';
import { FramePreparer, openEngine, runLocal } from '@detq/pipeline';
import { collectInfo } from './info';

interface Row {
  engine: EngineKind;
  precision: string;
  /** The network replayed as captured CUDA graphs (torch), or launched op by op. */
  cudaGraphs: boolean;
  batch: number;
  /** Where the images start: on the GPU (engine only) or as host RGB frames through infer(). */
  input: 'device' | 'host';
  msPerBatch: number;
  imagesPerSecond: number;
}

interface EndToEndRow {
  engine: EngineKind;
  precision: string;
  cudaGraphs: boolean;
  batch: number;
  /** Which file set: 'coco' (the --images files) or '12mp' (photos made from them for this run). */
  set: string;
  images: number;
  imagesPerSecond: number;
  /** End-to-end img/s over engine-only img/s at the same batch size (and CUDA graphs setting), measured in this run. */
  ofEngineOnly: number;
  /** Host CPU time (user + system, all threads) per labelled image. */
  cpuMsPerImage: number;
  /** Peak resident set of the process during this run (since the start of the process where Linux cannot reset it). */
  maxRssMiB: number;
  /** Resident set when the run started (engine-only rows, the photos made for the 12 MP set, Node itself). */
  startRssMiB: number;
}

/**
 * The resident set now and its peak (VmRSS, VmHWM). With `reset`, the peak starts again from now
 * (/proc/self/clear_refs 5), so a run's peak is not the 12 MP photo making's or an earlier run's.
 */
async function residentMiB(reset = false): Promise<{ now: number; peak: number }> {
  if (reset) await writeFile('/proc/self/clear_refs', '5').catch(() => undefined);
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { now: kib('VmRSS') / 1024 || process.memoryUsage().rss / 2 ** 20, peak: kib('VmHWM') / 1024 || process.resourceUsage().maxRSS / 1024 };
}

/** Reads of the 12 MP set: ~10 s at 400 img/s. */
const LARGE_PHOTO_READS = 4096;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const COCO128 = () => join(sharedDir(), 'datasets', 'coco128', 'images', 'train2017');

/** Median ms of infer() on the same frames, after one warm-up call. */
async function timeInfer(engine: Engine, frames: Frame[], iterations: number): Promise<number> {
  const params = detectParamsSchema.parse({});
  await engine.infer(frames, params);
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await engine.infer(frames, params);
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** `batch` real photos (coco128, cycled) as the engine's decoded frames: NMS sees real detections. */
async function realFrames(engine: Engine, files: string[], batch: number): Promise<Frame[]> {
  const preparer = new FramePreparer(engine.info, undefined, 'cpu');
  const decoded = await Promise.all(files.slice(0, Math.min(batch, files.length)).map(async (f) => (await preparer.decode(await readFile(f))).frame));
  return Array.from({ length: batch }, (_, i) => decoded[i % decoded.length]!);
}

/**
 * Engine-only milliseconds per batch on real images. GPU engines time device-resident images through
 * letterbox, network, decode + NMS and the copy of boxes back (what follows nvJPEG); the CPU engine
 * times infer() on letterboxed frames, its own input.
 */
async function engineOnly(engine: Engine, frames: Frame[], iterations: number): Promise<number> {
  const params = detectParamsSchema.parse({});
  if (engine instanceof NativeEngine) {
    await engine.benchmark(frames, 5, params);
    return median(await engine.benchmark(frames, iterations, params));
  }
  return timeInfer(engine, frames, iterations);
}

/** 12 MP photos (4032x3024, q90) made from the first `count` JPEGs, in a temp folder the caller removes. */
async function makeLargePhotos(files: string[], count: number, dir: string): Promise<void> {
  let next = 0;
  const work = async () => {
    while (next < Math.min(count, files.length)) {
      const i = next++;
      const out = await sharp(files[i]!).rotate().resize(4032, 3024, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
      await writeFile(join(dir, `photo-${String(i).padStart(4, '0')}.jpg`), out);
    }
  };
  await Promise.all(Array.from({ length: 8 }, work));
}

async function listJpegs(input: string): Promise<string[]> {
  if (input.endsWith('.txt'))
    return (await readFile(input, 'utf8')).split('\n').map((l) => l.trim()).filter(Boolean);
  return (await readdir(input)).filter((f) => /\.jpe?g$/i.test(f)).sort().map((f) => join(input, f));
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('Deployment table: engine-only and end-to-end throughput of every engine present, in one run')
    // 'device' rows start from real images already on the GPU (what follows nvJPEG), 'host' rows from
    // decoded RGB frames through infer(); end-to-end rows are whole `detq label` runs over JPEG files.
    .option('--engine <engine>', 'onnxruntime-cpu | torch | tensorrt | all', 'all')
    .option('--half', 'FP16 on GPU engines')
    .option('--model <path>', 'model file (default as for `detq label`)')
    .option('--batch <list>', 'batch sizes', '1,8,32')
    .option('--iterations <n>', 'timed batches per size (GPU engines; the CPU engine runs a fifth)', '50')
    .option('--images <path>', 'JPEG folder or .txt list: engine-only rows use its first images (default coco128), end-to-end rows label it')
    .option('--photos-12mp <n>', 'also label N 12 MP photos (4032x3024 q90) made now from the --images JPEGs, listed to at least 4,096 reads', '0')
    .option('--decode <where>', 'end-to-end JPEG decoding: auto (GPU when the engine can) | cpu', 'auto')
    .option('--cuda-graphs <which>', 'torch: rows with the network as captured CUDA graphs, launched op by op, or both: on | off | both', 'both')
    .option('--json', 'print the rows as JSON')
    .action(
      async (o: {
        engine: string;
        half?: boolean;
        model?: string;
        batch: string;
        iterations: string;
        images?: string;
        photos12mp: string;
        decode: string;
        cudaGraphs: string;
        json?: boolean;
      }) => {
        const info = collectInfo();
        const wanted = o.engine === 'all' ? info.engines.filter((e) => e.available).map((e) => e.kind) : [o.engine as EngineKind];
        for (const kind of wanted) {
          const e = info.engines.find((x) => x.kind === kind);
          if (!e) throw new FatalError('USAGE', `unknown engine ${kind}`);
          if (!e.available) throw new FatalError('ENGINE_UNAVAILABLE', `engine ${kind} is not available: ${e.reason}`);
        }
        if (o.decode !== 'auto' && o.decode !== 'cpu') throw new FatalError('USAGE', '--decode must be auto or cpu');
        const decode = o.decode;
        const graphSettings = { on: [true], off: [false], both: [true, false] }[o.cudaGraphs];
        if (!graphSettings) throw new FatalError('USAGE', '--cuda-graphs must be on, off or both');
        const batches = o.batch.split(',').map(Number);
        const iterations = Number(o.iterations);
        const files = await listJpegs(o.images ?? COCO128());
        const rows: Row[] = [];
        const endToEnd: EndToEndRow[] = [];
        const largeCount = Number(o.photos12mp);
        const largeDir = largeCount > 0 ? await mkdtemp(join(tmpdir(), 'detq-bench-12mp-')) : undefined;
        try {
          if (largeDir) await makeLargePhotos([...new Set(files)], largeCount, largeDir);
          const sets: [string, string][] = [];
          if (o.images) sets.push(['coco', o.images]);
          if (largeDir) {
            const list = join(largeDir, 'list.txt');
            const photos = (await readdir(largeDir)).filter((f) => f.endsWith('.jpg')).map((f) => join(largeDir, f));
            // Seconds of labelling at GPU speed, so the first batches' start-up does not dominate the rate.
            await writeFile(list, Array.from({ length: Math.ceil(LARGE_PHOTO_READS / Math.max(1, photos.length)) }, () => photos.join('\n')).join('\n'));
            sets.push(['12mp', list]);
          }
          for (const kind of wanted) {
            const gpu = kind !== 'onnxruntime-cpu';
            const half = gpu && o.half === true;
            // Only torch captures graphs: the other engines run once, and their rows say what the engine reports.
            for (const cudaGraphs of kind === 'torch' ? graphSettings : [false]) {
              const { engine } = await openEngine({ engine: kind, half, cudaGraphs, maxBatch: Math.max(...batches), ...(o.model && { model: o.model }) });
              const row = { engine: kind, precision: engine.info.precision, cudaGraphs: engine.info.cudaGraphs === true };
              try {
                for (const batch of batches) {
                  const frames = await realFrames(engine, files, batch);
                  const ms = await engineOnly(engine, frames, gpu ? iterations : Math.max(2, Math.round(iterations / 5)));
                  rows.push({ ...row, batch, input: 'device', msPerBatch: ms, imagesPerSecond: (batch * 1000) / ms });
                  if (gpu) {
                    const hostMs = await timeInfer(engine, frames, iterations);
                    rows.push({ ...row, batch, input: 'host', msPerBatch: hostMs, imagesPerSecond: (batch * 1000) / hostMs });
                  }
                }
              } finally {
                await engine.dispose();
              }
              const batch = Math.max(...batches);
              const engineRate = rows.find((r) => r.engine === kind && r.cudaGraphs === row.cudaGraphs && r.batch === batch && r.input === 'device')?.imagesPerSecond ?? NaN;
              for (const [set, input] of sets) {
                const out = await mkdtemp(join(tmpdir(), 'detq-bench-'));
                try {
                  // CPU from the first labelled image on: the engine's load (cuDNN autotuning) is not labelling.
                  let before: NodeJS.ResourceUsage | undefined;
                  const start = await residentMiB(true);
                  const s = await runLocal(
                    { input, out, engine: kind, half, cudaGraphs, decode, params: detectParamsSchema.parse({}), batch, formats: ['jsonl'], previews: 0, ...(o.model && { model: o.model }) },
                    { progress: () => (before ??= process.resourceUsage()) },
                  );
                  const after = process.resourceUsage();
                  const rss = await residentMiB();
                  before ??= after;
                  const cpuMs = (after.userCPUTime + after.systemCPUTime - before.userCPUTime - before.systemCPUTime) / 1000;
                  endToEnd.push({
                    ...row,
                    precision: half ? 'fp16' : 'fp32',
                    batch,
                    set,
                    images: s.counts.labelled,
                    imagesPerSecond: s.timing.imagesPerSecond,
                    ofEngineOnly: s.timing.imagesPerSecond / engineRate,
                    cpuMsPerImage: cpuMs / Math.max(1, s.counts.total),
                    maxRssMiB: rss.peak,
                    startRssMiB: start.now,
                  });
                } finally {
                  await rm(out, { recursive: true, force: true });
                }
              }
            }
          }
        } finally {
          if (largeDir) await rm(largeDir, { recursive: true, force: true });
        }
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ device: info.cuda.devices[0]?.name ?? 'cpu', engineOnly: rows, endToEnd }, null, 2)}\n`);
          return;
        }
        const lines = [`${'engine'.padEnd(16)} ${'precision'.padEnd(9)} ${'graphs'.padEnd(6)} ${'batch'.padStart(5)} ${'input'.padEnd(6)} ${'ms/batch'.padStart(9)} ${'img/s'.padStart(8)}`];
        for (const r of rows)
          lines.push(
            `${r.engine.padEnd(16)} ${r.precision.padEnd(9)} ${(r.cudaGraphs ? 'on' : 'off').padEnd(6)} ${String(r.batch).padStart(5)} ${r.input.padEnd(6)} ${r.msPerBatch.toFixed(2).padStart(9)} ${r.imagesPerSecond.toFixed(1).padStart(8)}`,
          );
        for (const r of endToEnd)
          lines.push(
            `end-to-end detq label (${r.set}, decode ${decode}), ${r.engine} ${r.precision}, CUDA graphs ${r.cudaGraphs ? 'on' : 'off'}, batch ${r.batch}: ${r.imagesPerSecond.toFixed(1)} img/s over ${r.images} JPEG files = ` +
              `${r.ofEngineOnly.toFixed(2)} of engine-only; host CPU ${r.cpuMsPerImage.toFixed(2)} ms/image, peak RSS ${r.maxRssMiB.toFixed(0)} MiB (${r.startRssMiB.toFixed(0)} MiB at its start)`,
          );
        process.stdout.write(`${lines.join('\n')}\n`);
      },
    );
}
