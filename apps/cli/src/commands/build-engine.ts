import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildEngineFlagsSchema, describeFlagIssues, FatalError } from '@detq/core';
import { decodeImage, letterboxRgb } from '@detq/imaging';
import { buildTensorRtEngine } from '@detq/inference';
import { cacheDir, describeParity, isImageName, runParityGate } from '@detq/pipeline';

/**
 * INT8 calibration input: up to `limit` images of `dir`, letterboxed by the CPU path to the opt
 * resolution and written as one float32 NCHW file the native calibrator streams batch by batch.
 */
async function writeCalibrationData(dir: string, width: number, height: number, limit: number, file: string): Promise<number> {
  const names = (await readdir(dir)).filter(isImageName).sort().slice(0, limit);
  if (!names.length) throw new FatalError('INPUT_NOT_FOUND', `no calibration images in ${dir}`);
  const out = createWriteStream(file);
  const plane = width * height;
  for (const name of names) {
    const img = await decodeImage(await readFile(join(dir, name)));
    const { pixels } = letterboxRgb(img.rgb, img.width, img.height, width, height);
    const chw = new Float32Array(3 * plane);
    for (let i = 0, p = 0; i < plane; i++, p += 3) {
      chw[i] = pixels[p]! / 255;
      chw[plane + i] = pixels[p + 1]! / 255;
      chw[2 * plane + i] = pixels[p + 2]! / 255;
    }
    if (!out.write(Buffer.from(chw.buffer))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject);
    out.end(() => resolve());
  });
  return names.length;
}

export function register(program: Command): void {
  program
    .command('build-engine')
    .description('Build a TensorRT engine from an ONNX export for this GPU (dynamic batch and resolution)')
    .argument('<model>', 'ONNX model (a dynamic-axes export for batch/resolution profiles)')
    .option('--fp16', 'FP16 kernels (TensorRT 11: the ONNX must be FP16, precision comes from the model)')
    .option('--int8', 'INT8: Q/DQ models use their own scales; others calibrate (TensorRT 10, needs --calib or --calib-cache)')
    .option('--calib <dir>', 'folder of calibration images (INT8)')
    .option('--calib-cache <file>', 'calibration cache, keyed by model, input size and algorithm; read when it matches, written after calibrating')
    .option('--calib-algo <algo>', 'minmax | entropy', 'minmax')
    .option('--calib-images <n>', 'most calibration images used', '512')
    .option('--calib-batch <n>', 'calibration batch size', '8')
    .option('--workspace <MiB>', 'builder workspace limit in MiB', '4096')
    .option('--min <shape>', 'smallest input NxCxHxW', '1x3x640x640')
    .option('--opt <shape>', 'input shape to optimise for', '16x3x640x640')
    .option('--max <shape>', 'largest input NxCxHxW', '32x3x640x640')
    .option('--contexts <n>', 'execution contexts the engine serves (one optimisation profile each)', '2')
    .option('--out <dir>', 'folder for the engine file (default: the detq cache)')
    .option('--verify <images>', 'parity gate: keep the engine only if it matches the reference on these images')
    .option('--labels <dir>', 'with --verify: YOLO labels, so the gate also checks mAP50-95 drift')
    .option('--reference <onnx>', 'with --verify: reference model on onnxruntime-cpu (default: the model built from)')
    .action(async (model: string, raw: Record<string, unknown>) => {
      const parsed = buildEngineFlagsSchema.safeParse(raw, { reportInput: true });
      if (!parsed.success) throw new FatalError('USAGE', describeFlagIssues(parsed.error));
      const f = parsed.data;
      const precision = f.int8 ? 'int8' : f.fp16 ? 'fp16' : 'fp32';
      const [, , h, w] = f.opt.split('x').map(Number);
      const engines = join(cacheDir(), 'engines');
      const tmp = await mkdtemp(join(tmpdir(), 'detq-calib-'));
      try {
        let calibration: Parameters<typeof buildTensorRtEngine>[0]['calibration'];
        if (precision === 'int8') {
          calibration = { batch: f.calibBatch, algorithm: f.calibAlgo, ...(f.calibCache && { cache: f.calibCache }) };
          if (f.calib) {
            const data = join(tmp, 'calibration.f32');
            const images = await writeCalibrationData(f.calib, w!, h!, f.calibImages, data);
            process.stderr.write(`detq: ${images} calibration images from ${f.calib} (${f.calibAlgo})\n`);
            calibration = { ...calibration, data, images };
          }
        }
        const built = await buildTensorRtEngine({
          onnxPath: model,
          outDir: f.out ?? engines,
          timingCacheDir: engines,
          precision,
          workspaceMiB: f.workspace,
          minShape: f.min,
          optShape: f.opt,
          maxShape: f.max,
          contexts: f.contexts,
          ...(calibration && { calibration }),
          ...(f.verify && {
            verify: (engine: string) =>
              runParityGate({ engine: 'tensorrt', model: engine, reference: f.reference ?? model, images: f.verify!, ...(f.labels && { labels: f.labels }) }),
          }),
        });
        const parity = built.header.parity;
        if (parity) process.stderr.write(`detq: ${describeParity(parity)}\n`);
        if (!built.path) throw new FatalError('BAD_MODEL', `the ${precision} engine failed the parity gate and was not kept: ${parity?.reasons.join('; ')}`);
        process.stdout.write(`${built.path}\n`);
        process.stderr.write(`detq: built ${built.header.key.precision} engine (${built.header.quantization} quantisation, ${built.header.key.profiles} profiles) in ${built.seconds.toFixed(1)} s\n`);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    });
}
