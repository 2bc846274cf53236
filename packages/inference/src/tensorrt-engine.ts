import { basename, join } from 'node:path';
import type { TensorRtBuildOptions } from '@detq/native';
import { FatalError, sha256File } from '@detq/core';
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

/** What `detq build-engine` takes: the addon's build options, with the file named for its key in outDir. */
export type BuildEngineOptions = Omit<TensorRtBuildOptions, 'outputPath' | 'modelSha256'> & {
  /** Folder the engine file is written to (named by its key). */
  outDir: string;
};

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
  const sha256 = await sha256File(o.onnxPath);
  const outputPath = join(
    o.outDir,
    engineFileName({ model: o.onnxPath, sha256, gpu: gpu.name, cc: gpu.computeCapability, tensorrt: trt, precision: o.precision, min: o.minShape, max: o.maxShape }),
  );
  const { outDir: _, ...options } = o;
  const result = await build({ ...options, outputPath, modelSha256: sha256, device: o.device ?? 0 });
  return { path: result.path, seconds: result.seconds };
}
