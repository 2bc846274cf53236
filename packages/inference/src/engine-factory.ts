import { gpuEnvSchema, parseEnv, type EngineChoice } from '@detq/core';
import type { Engine } from './engine';
import { OnnxRuntimeEngine } from './onnxruntime-engine';
import { loadTensorRtEngine } from './tensorrt-engine';
import { loadTorchEngine } from './torch-engine';

export type { EngineChoice };

export interface EngineOptions {
  /** Model file: .onnx for onnxruntime-cpu (and for TensorRT to build from), .torchscript for torch. */
  modelPath: string;
  numClasses: number;
  threads?: number;
  /** onnxruntime-cpu sessions sharing the threads (default: defaultCpuSessions). */
  sessions?: number;
  maxBatch?: number;
  imgsz?: [number, number];
  /** FP16 on GPU engines. */
  half?: boolean;
  /** CUDA device index of the GPU engines (default 0). */
  device?: number;
  /** Torch: the network as captured CUDA graphs (default true). */
  cudaGraphs?: boolean;
  /** Told about fallbacks in one line (the CLI prints it to stderr). */
  notice?: (line: string) => void;
}

/** Creates the engine asked for; `auto` prefers GPU engines and falls back to onnxruntime-cpu. */
export async function createEngine(choice: EngineChoice, options: EngineOptions): Promise<Engine> {
  switch (choice) {
    case 'onnxruntime-cpu':
      return OnnxRuntimeEngine.load(options.modelPath, options);
    case 'torch':
      return loadTorchEngine(options.modelPath, gpuOptions(options));
    case 'tensorrt':
      return loadTensorRtEngine(options.modelPath, gpuOptions(options));
    case 'auto': {
      // Read before any load: bad settings stop the run rather than read as a GPU that cannot run here.
      const gpu = gpuOptions(options);
      // GPU engines first (TensorRT, then LibTorch); any reason one cannot run goes into a one-line notice.
      const reasons: string[] = [];
      for (const [kind, load] of [['tensorrt', loadTensorRtEngine], ['torch', loadTorchEngine]] as const) {
        try {
          return await load(options.modelPath, gpu);
        } catch (err) {
          reasons.push(`${kind}: ${(err as Error).message}`);
        }
      }
      options.notice?.(`--engine auto: using onnxruntime-cpu (${reasons.join('; ')})`);
      return OnnxRuntimeEngine.load(options.modelPath, options);
    }
  }
}

/** The GPU loaders' options: the caller's, and the environment's GPU settings (a bad one throws EnvError). */
function gpuOptions(o: EngineOptions) {
  const env = parseEnv(gpuEnvSchema, process.env);
  return {
    ...(env.DETQ_GPU_CONTEXTS !== undefined && { contexts: env.DETQ_GPU_CONTEXTS }),
    ...(env.DETQ_GPU_BATCHES_PER_CONTEXT !== undefined && { batchesPerContext: env.DETQ_GPU_BATCHES_PER_CONTEXT }),
    ...(o.half !== undefined && { half: o.half }),
    ...(o.device !== undefined && { device: o.device }),
    ...(o.maxBatch !== undefined && { maxBatch: o.maxBatch }),
    ...(o.imgsz && { imgsz: o.imgsz }),
    ...(o.cudaGraphs !== undefined && { cudaGraphs: o.cudaGraphs }),
  };
}
