import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FatalError } from '@detq/core';
import { decodeImage, letterboxRgb } from '@detq/imaging';
import { buildTensorRtEngine } from '@detq/inference';
import { cacheDir, isImageName } from '@detq/pipeline';

const SHAPE = /^\d+x3x\d+x\d+$/;

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
    .option('--fp16', 'allow FP16 kernels')
    .option('--int8', 'INT8 with entropy calibration (needs --calib or --calib-cache)')
    .option('--calib <dir>', 'folder of calibration images (INT8)')
    .option('--calib-cache <file>', 'calibration cache, read when present and written after calibrating')
    .option('--calib-images <n>', 'most calibration images used', '512')
    .option('--calib-batch <n>', 'calibration batch size', '8')
    .option('--workspace <MiB>', 'builder workspace limit in MiB', '4096')
    .option('--min <shape>', 'smallest input NxCxHxW', '1x3x640x640')
    .option('--opt <shape>', 'input shape to optimise for', '16x3x640x640')
    .option('--max <shape>', 'largest input NxCxHxW', '32x3x640x640')
    .option('--out <dir>', 'folder for the engine file (default: the detq cache)')
    .action(async (model: string, o: Record<string, string | boolean | undefined>) => {
      for (const k of ['min', 'opt', 'max'] as const)
        if (!SHAPE.test(String(o[k]))) throw new FatalError('USAGE', `--${k} must be NxCxHxW with C=3, e.g. 1x3x640x640`);
      const precision = o.int8 ? 'int8' : o.fp16 ? 'fp16' : 'fp32';
      const calibDir = typeof o.calib === 'string' ? o.calib : undefined;
      const calibCache = typeof o['calib-cache'] === 'string' ? o['calib-cache'] : undefined;
      if (precision === 'int8' && !calibDir && !calibCache) throw new FatalError('USAGE', '--int8 needs --calib <dir> or --calib-cache <file>');
      const [, , h, w] = String(o.opt).split('x').map(Number);
      const tmp = await mkdtemp(join(tmpdir(), 'detq-calib-'));
      try {
        let calibrationData: string | undefined;
        if (precision === 'int8' && calibDir) {
          calibrationData = join(tmp, 'calibration.f32');
          const n = await writeCalibrationData(calibDir, w!, h!, Number(o['calib-images']), calibrationData);
          process.stderr.write(`detq: calibrating on ${n} images from ${calibDir}\n`);
        }
        const built = await buildTensorRtEngine({
          onnxPath: model,
          outDir: typeof o.out === 'string' ? o.out : join(cacheDir(), 'engines'),
          precision,
          workspaceMiB: Number(o.workspace),
          minShape: String(o.min),
          optShape: String(o.opt),
          maxShape: String(o.max),
          ...(calibrationData && { calibrationData }),
          calibrationCache: calibCache ?? join(tmp, 'calibration.cache'),
          calibrationBatch: Number(o['calib-batch']),
        });
        process.stdout.write(`${built.path}\n`);
        process.stderr.write(`detq: built ${precision} engine in ${built.seconds.toFixed(1)} s\n`);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    });
}
