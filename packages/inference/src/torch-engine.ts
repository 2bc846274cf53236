import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FatalError } from '@detq/core';
import { NativeEngine, type NativeEngineOptions } from './native-loader';

/**
 * The TorchScript for a model path: the path itself when it is one, else a `.torchscript` beside an
 * ONNX export of the same model family (yolo11n-dyn.onnx -> yolo11n-cuda-fp32.torchscript).
 */
export function torchscriptFor(modelPath: string): string {
  if (modelPath.endsWith('.torchscript') || modelPath.endsWith('.pt')) return modelPath;
  const family = basename(modelPath).split(/[-.]/)[0] ?? '';
  const dir = dirname(modelPath);
  const found = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.torchscript') && f.split(/[-.]/)[0] === family).sort() : [];
  if (!found[0])
    throw new FatalError('BAD_MODEL', `the torch engine needs a TorchScript export (yolo export format=torchscript device=0); none for ${basename(modelPath)} in ${dir}`);
  return join(dir, found[0]);
}

/** LibTorch on the GPU: a TorchScript traced on CUDA, FP32 or FP16 (`half`), any batch size. */
export function loadTorchEngine(modelPath: string, options: NativeEngineOptions): Promise<NativeEngine> {
  return NativeEngine.load('torch', torchscriptFor(modelPath), options, { batchRange: { min: 1, max: options.maxBatch ?? 32 } });
}
