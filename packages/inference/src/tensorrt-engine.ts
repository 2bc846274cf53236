import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { TensorRtBuildOptions } from '@detq/native';
import { FatalError, sha256File, type EngineHeader, type ParityFigures } from '@detq/core';
import { readCalibrationCache, writeCalibrationCache, type CalibrationKey } from './calibration-cache';
import { checkEngineCompatible, readEngineFile, writeEngineFile, type EngineHeaderFields } from './engine-file';
import { loadNativeAddon, NativeEngine, nativeUnavailableReason, type NativeEngineOptions } from './native-loader';
import { readOnnxModelMetadata as readModelMetadata } from './onnx-metadata';
import { end2endFlag } from './output-layout';

/** The GPU and TensorRT library the addon runs on: what a plan must have been built for. */
function planTarget(device: number): { gpu: string; computeCapability: string; tensorrt: string } {
  const reason = nativeUnavailableReason('tensorrt');
  if (reason) throw new FatalError('ENGINE_UNAVAILABLE', `engine tensorrt is not available: ${reason}`);
  const addon = loadNativeAddon();
  const gpu = addon.cudaInfo().devices[device];
  const tensorrt = addon.buildInfo.tensorrt;
  if (!gpu || !tensorrt) throw new FatalError('ENGINE_UNAVAILABLE', `engine tensorrt is not available: no CUDA device ${device}`);
  return { gpu: gpu.name, computeCapability: gpu.computeCapability, tensorrt };
}

const batchOf = (shape: string) => Number(shape.split('x')[0]);

/**
 * TensorRT from a detq engine file (`detq build-engine`). The file is read and checked here (header,
 * plan checksum, GPU and TensorRT build) before TensorRT sees a byte; each execution context gets one
 * of the plan's optimisation profiles, and batches pad to sizes inside the profile.
 */
export async function loadTensorRtEngine(modelPath: string, options: NativeEngineOptions): Promise<NativeEngine> {
  if (!modelPath.endsWith('.engine'))
    throw new FatalError(
      'BAD_MODEL',
      `the tensorrt engine runs a plan built for this GPU: \`detq build-engine ${basename(modelPath)}\`, then --model <file>.engine`,
    );
  const here = planTarget(options.device ?? 0);
  const { header, plan } = await readEngineFile(modelPath);
  checkEngineCompatible(header, here, modelPath);
  const k = header.key;
  // The profile decides the batch range; smaller batches pad up to its min.
  const max = batchOf(k.max);
  return NativeEngine.load('tensorrt', modelPath, options, {
    batchRange: { min: batchOf(k.min), opt: Math.min(batchOf(k.opt), max), max },
    profiles: k.profiles,
    classNames: header.classNames,
    load: { plan, precision: k.precision, ...(header.end2end !== undefined && { end2end: header.end2end }) },
  });
}

/** What `detq build-engine` takes. */
export interface BuildEngineOptions {
  onnxPath: string;
  precision: TensorRtBuildOptions['precision'];
  workspaceMiB: number;
  minShape: string;
  optShape: string;
  maxShape: string;
  /** Execution contexts the engine serves: one optimisation profile each. */
  contexts: number;
  device?: number;
  /** Folder the engine file is written to (named by its key). */
  outDir: string;
  /** Folder for the timing cache (one file per GPU and TensorRT build). */
  timingCacheDir: string;
  /** INT8 calibration (models without Q/DQ nodes, TensorRT 10). */
  calibration?: {
    /** float32 NCHW images at the opt resolution, at least one batch of them. */
    data?: string;
    images?: number;
    /** detq calibration cache (keyed by model, input size and algorithm). */
    cache?: string;
    batch: number;
    algorithm: 'minmax' | 'entropy';
  };
  /**
   * The parity gate: called with the new engine at a temporary name; the engine file is kept (its
   * figures in the header) only when it passes.
   */
  verify?: (enginePath: string) => Promise<ParityFigures>;
}

/**
 * The engine file name: everything a plan is bound to (model bytes, GPU, compute capability, TensorRT
 * build, precision, profile), so a cache of engines never hands a plan to the wrong GPU or runtime.
 */
export function engineFileName(k: { model: string; sha256: string; gpu: string; cc: string; tensorrt: string; precision: string; min: string; max: string; profiles: number }): string {
  const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-|-$/g, '');
  const stem = basename(k.model).replace(/\.onnx$/, '');
  return `${stem}.${k.sha256.slice(0, 12)}.${slug(k.gpu)}.sm${k.cc.replace('.', '')}.trt${k.tensorrt}.${k.precision}.${k.min}_${k.max}.p${k.profiles}.engine`;
}

/**
 * Builds a TensorRT engine from an ONNX export on this machine's GPU and writes the engine file
 * (header with the ONNX's class names and output layout, checksum, atomic rename).
 */
export async function buildTensorRtEngine(o: BuildEngineOptions): Promise<{ path?: string; header: EngineHeader; seconds: number }> {
  const device = o.device ?? 0;
  // Bad input is reported before anything about this machine.
  const cal = o.calibration;
  if (cal?.data && cal.images !== undefined && cal.images < cal.batch)
    throw new FatalError('USAGE', `the calibration set has ${cal.images} image(s), fewer than one batch of ${cal.batch}: give more images or a smaller --calib-batch`);
  const here = planTarget(device);
  const build = loadNativeAddon().buildTensorRtEngine;
  if (!build) throw new FatalError('ENGINE_UNAVAILABLE', 'cannot build a TensorRT engine: the native addon was built without TensorRT');
  const [sha256, metadata] = await Promise.all([sha256File(o.onnxPath), readModelMetadata(o.onnxPath)]);
  const [, , height, width] = o.optShape.split('x').map(Number);
  const calKey: CalibrationKey | undefined = cal && { modelSha256: sha256, height: height!, width: width!, algorithm: cal.algorithm };

  await Promise.all([mkdir(o.outDir, { recursive: true }), mkdir(o.timingCacheDir, { recursive: true })]);
  const tmp = await mkdtemp(join(tmpdir(), 'detq-trt-build-'));
  try {
    // TensorRT reads and writes its raw cache; the detq key around it is checked and written here.
    const rawCache = join(tmp, 'calibration.raw');
    if (cal?.cache && calKey) {
      const raw = await readCalibrationCache(cal.cache, calKey);
      if (raw) await writeFile(rawCache, raw);
    }
    const timingCache = join(o.timingCacheDir, `timing.${here.gpu.toLowerCase().replace(/[^a-z0-9.]+/g, '-')}.sm${here.computeCapability.replace('.', '')}.trt${here.tensorrt}.cache`);
    const result = await build({
      onnxPath: o.onnxPath,
      precision: o.precision,
      workspaceMiB: o.workspaceMiB,
      minShape: o.minShape,
      optShape: o.optShape,
      maxShape: o.maxShape,
      profiles: o.contexts,
      device,
      timingCache,
      ...(cal && { calibrationCache: rawCache, calibrationBatch: cal.batch, calibrationAlgorithm: cal.algorithm, ...(cal.data && { calibrationData: cal.data }) }),
    }).catch((err: Error) => {
      throw new FatalError('BAD_MODEL', `cannot build a TensorRT engine from ${o.onnxPath}: ${err.message}`, { cause: err });
    });
    if (cal?.cache && calKey && result.quantization === 'calibrated') {
      const raw = await readFile(rawCache).catch(() => undefined);
      if (raw?.length) await writeCalibrationCache(cal.cache, calKey, raw);
    }
    const end2end = end2endFlag(metadata.props.end2end);
    const fields: EngineHeaderFields = {
      key: {
        modelSha256: sha256,
        gpu: result.gpu,
        computeCapability: result.computeCapability,
        tensorrt: result.tensorrt,
        precision: result.precision,
        input: result.input,
        min: o.minShape,
        opt: o.optShape,
        max: o.maxShape,
        profiles: result.profiles,
      },
      quantization: result.quantization,
      model: basename(o.onnxPath),
      classNames: metadata.names,
      ...(end2end !== undefined && { end2end }),
      builtAt: new Date().toISOString(),
    };
    const name = engineFileName({ model: o.onnxPath, sha256, gpu: result.gpu, cc: result.computeCapability, tensorrt: result.tensorrt, precision: result.precision, min: o.minShape, max: o.maxShape, profiles: result.profiles });
    const path = join(o.outDir, name);
    if (!o.verify) return { path, header: await writeEngineFile(path, fields, result.plan), seconds: result.seconds };
    // Verified at a name no engine cache looks for; kept under its real name only when it passes.
    const candidate = join(o.outDir, `.unverified-${process.pid}-${randomBytes(4).toString('hex')}.${name}`);
    try {
      const unverified = await writeEngineFile(candidate, fields, result.plan);
      const parity = await o.verify(candidate);
      if (!parity.passed) return { header: { ...unverified, parity }, seconds: result.seconds };
      return { path, header: await writeEngineFile(path, { ...fields, parity }, result.plan), seconds: result.seconds };
    } finally {
      await rm(candidate, { force: true });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
