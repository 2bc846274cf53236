import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename, join } from 'node:path';
import { FatalError } from '@detq/core';
import { loadNativeAddon, NativeEngine, nativeUnavailableReason, type NativeEngineOptions } from './native-loader';

/** TensorRT 10 from a detq engine file (`detq build-engine`): plans are bound to one GPU model and TensorRT version. */
export function loadTensorRtEngine(modelPath: string, options: NativeEngineOptions): Promise<NativeEngine> {
  if (!modelPath.endsWith('.engine'))
    throw new FatalError(
      'BAD_MODEL',
      `the tensorrt engine runs a plan built for this GPU: \`detq build-engine ${basename(modelPath)}\`, then --model <file>.engine`,
    );
  return NativeEngine.load('tensorrt', modelPath, options);
}

export interface BuildEngineOptions {
  onnxPath: string;
  /** Folder the engine file is written to (named by its key). */
  outDir: string;
  precision: 'fp32' | 'fp16' | 'int8';
  workspaceMiB: number;
  /** NxCxHxW, e.g. 1x3x512x512 / 16x3x640x640 / 32x3x1280x1280. */
  minShape: string;
  optShape: string;
  maxShape: string;
  device?: number;
  /** INT8: float32 NCHW calibration images at the opt resolution, and where the calibration cache lives. */
  calibrationData?: string;
  calibrationCache?: string;
  calibrationBatch?: number;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The engine file name: everything a plan is bound to (model bytes, GPU, compute capability, TensorRT
 * version, precision, profile), so a cache of engines never hands a plan to the wrong GPU or runtime.
 */
export function engineFileName(k: { model: string; sha256: string; gpu: string; cc: string; tensorrt: string; precision: string; min: string; max: string }): string {
  const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-|-$/g, '');
  const stem = basename(k.model).replace(/\.onnx$/, '');
  return `${stem}.${k.sha256.slice(0, 12)}.${slug(k.gpu)}.sm${k.cc.replace('.', '')}.trt${k.tensorrt}.${k.precision}.${k.min}_${k.max}.engine`;
}

/** Builds a TensorRT engine file from an ONNX export on this machine's GPU. */
export async function buildTensorRtEngine(o: BuildEngineOptions): Promise<{ path: string; seconds: number }> {
  const reason = nativeUnavailableReason('tensorrt');
  if (reason) throw new FatalError('ENGINE_UNAVAILABLE', `cannot build a TensorRT engine: ${reason}`);
  const addon = loadNativeAddon();
  const build = addon.buildTensorRtEngine;
  const trt = addon.buildInfo.tensorrt;
  const gpu = addon.cudaInfo().devices[o.device ?? 0];
  if (!build || !trt || !gpu) throw new FatalError('ENGINE_UNAVAILABLE', 'cannot build a TensorRT engine: no TensorRT or no GPU');
  const sha256 = await sha256Of(o.onnxPath);
  const outputPath = join(
    o.outDir,
    engineFileName({ model: o.onnxPath, sha256, gpu: gpu.name, cc: gpu.computeCapability, tensorrt: trt, precision: o.precision, min: o.minShape, max: o.maxShape }),
  );
  const result = await build({
    onnxPath: o.onnxPath,
    outputPath,
    modelSha256: sha256,
    precision: o.precision,
    workspaceMiB: o.workspaceMiB,
    minShape: o.minShape,
    optShape: o.optShape,
    maxShape: o.maxShape,
    device: o.device ?? 0,
    ...(o.calibrationData && { calibrationData: o.calibrationData }),
    ...(o.calibrationCache && { calibrationCache: o.calibrationCache }),
    ...(o.calibrationBatch && { calibrationBatch: o.calibrationBatch }),
  });
  return { path: result.path, seconds: result.seconds };
}
