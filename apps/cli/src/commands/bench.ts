import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { computeLetterbox, detectParamsSchema, FatalError, type EngineKind } from '@detq/core';
import { NativeEngine, type Engine, type Frame } from '@detq/inference';
import { openEngine, runLocal } from '@detq/pipeline';
import { collectInfo } from './info';

interface Row {
  engine: EngineKind;
  precision: string;
  batch: number;
  /** Where the images start: on the GPU (engine only) or as host RGB frames through infer(). */
  input: 'device' | 'host';
  msPerBatch: number;
  imagesPerSecond: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

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

/** infer() on decoded 640x480 RGB frames: adds the copy through pinned memory to the GPU. */
async function hostFrames(engine: Engine, batch: number, iterations: number): Promise<number> {
  const [w, h] = [640, 480];
  const pixels = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 13) & 0xff);
  const frames: Frame[] = Array.from({ length: batch }, () => ({ layout: 'rgb', pixels, width: w, height: h }));
  return timeInfer(engine, frames, iterations);
}

/**
 * Engine-only milliseconds per batch. GPU engines time device-resident images through letterbox,
 * network, decode + NMS and the copy of boxes back (the nvJPEG path's cost); the CPU engine times
 * infer() on letterboxed frames, its own input.
 */
async function engineOnly(engine: Engine, batch: number, iterations: number): Promise<number> {
  const params = detectParamsSchema.parse({});
  if (engine instanceof NativeEngine) {
    await engine.benchmark(batch, 5, params);
    return median(await engine.benchmark(batch, iterations, params));
  }
  const { inputWidth: w, inputHeight: h } = engine.info;
  const letterbox = computeLetterbox(w, h, w, h);
  const pixels = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 7) & 0xff);
  const frames: Frame[] = Array.from({ length: batch }, () => ({ layout: 'letterboxed', pixels, width: w, height: h, letterbox }));
  return timeInfer(engine, frames, iterations);
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('Deployment table: engine-only and end-to-end throughput of every engine present')
    // 'device' rows start from images already on the GPU (the nvJPEG path), 'host' rows from decoded RGB
    // frames through infer(); the end-to-end line is a whole `detq label` run over JPEG files.
    .option('--engine <engine>', 'onnxruntime-cpu | torch | tensorrt | all', 'all')
    .option('--half', 'FP16 on GPU engines')
    .option('--model <path>', 'model file (default as for `detq label`)')
    .option('--batch <list>', 'batch sizes', '1,8,32')
    .option('--iterations <n>', 'timed batches per size (GPU engines; the CPU engine runs a fifth)', '50')
    .option('--images <dir>', 'JPEG folder for the end-to-end `detq label` figure')
    .option('--json', 'print the rows as JSON')
    .action(async (o: { engine: string; half?: boolean; model?: string; batch: string; iterations: string; images?: string; json?: boolean }) => {
      const info = collectInfo();
      const wanted = o.engine === 'all' ? info.engines.filter((e) => e.available).map((e) => e.kind) : [o.engine as EngineKind];
      for (const kind of wanted) {
        const e = info.engines.find((x) => x.kind === kind);
        if (!e) throw new FatalError('USAGE', `unknown engine ${kind}`);
        if (!e.available) throw new FatalError('ENGINE_UNAVAILABLE', `engine ${kind} is not available: ${e.reason}`);
      }
      const batches = o.batch.split(',').map(Number);
      const iterations = Number(o.iterations);
      const rows: Row[] = [];
      const endToEnd: { engine: EngineKind; precision: string; batch: number; imagesPerSecond: number; images: number }[] = [];
      for (const kind of wanted) {
        const gpu = kind !== 'onnxruntime-cpu';
        const half = gpu && o.half === true;
        const { engine } = await openEngine({ engine: kind, half, maxBatch: Math.max(...batches), ...(o.model && { model: o.model }) });
        try {
          for (const batch of batches) {
            const ms = await engineOnly(engine, batch, gpu ? iterations : Math.max(2, Math.round(iterations / 5)));
            rows.push({ engine: kind, precision: engine.info.precision, batch, input: 'device', msPerBatch: ms, imagesPerSecond: (batch * 1000) / ms });
            if (gpu) {
              const hostMs = await hostFrames(engine, batch, iterations);
              rows.push({ engine: kind, precision: engine.info.precision, batch, input: 'host', msPerBatch: hostMs, imagesPerSecond: (batch * 1000) / hostMs });
            }
          }
        } finally {
          await engine.dispose();
        }
        if (o.images) {
          const out = await mkdtemp(join(tmpdir(), 'detq-bench-'));
          const batch = Math.max(...batches);
          try {
            const s = await runLocal({ input: o.images, out, engine: kind, half, params: detectParamsSchema.parse({}), batch, formats: ['jsonl'], previews: 0, ...(o.model && { model: o.model }) });
            endToEnd.push({ engine: kind, precision: half ? 'fp16' : 'fp32', batch, imagesPerSecond: s.timing.imagesPerSecond, images: s.counts.labelled });
          } finally {
            await rm(out, { recursive: true, force: true });
          }
        }
      }
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ device: info.cuda.devices[0]?.name ?? 'cpu', engineOnly: rows, endToEnd }, null, 2)}\n`);
        return;
      }
      const lines = [`${'engine'.padEnd(16)} ${'precision'.padEnd(9)} ${'batch'.padStart(5)} ${'input'.padEnd(6)} ${'ms/batch'.padStart(9)} ${'img/s'.padStart(8)}`];
      for (const r of rows)
        lines.push(`${r.engine.padEnd(16)} ${r.precision.padEnd(9)} ${String(r.batch).padStart(5)} ${r.input.padEnd(6)} ${r.msPerBatch.toFixed(2).padStart(9)} ${r.imagesPerSecond.toFixed(1).padStart(8)}`);
      for (const r of endToEnd)
        lines.push(`end-to-end detq label, ${r.engine} ${r.precision}, batch ${r.batch}: ${r.imagesPerSecond.toFixed(1)} img/s over ${r.images} JPEG files`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
