import { FatalError, type EngineKind } from '@detq/core';
import type { Engine } from './engine';
import { OnnxRuntimeEngine } from './onnxruntime-engine';

export type EngineChoice = EngineKind | 'auto';

export interface EngineOptions {
  /** Model file: .onnx for onnxruntime-cpu (and for TensorRT to build from), .torchscript for torch. */
  modelPath: string;
  numClasses: number;
  threads?: number;
  maxBatch?: number;
  imgsz?: [number, number];
  /** FP16 on GPU engines. */
  half?: boolean;
  /** Told about fallbacks in one line (the CLI prints it to stderr). */
  notice?: (line: string) => void;
}

/** Creates the engine asked for; `auto` prefers GPU engines and falls back to onnxruntime-cpu. */
export async function createEngine(choice: EngineChoice, options: EngineOptions): Promise<Engine> {
  switch (choice) {
    case 'onnxruntime-cpu':
      return OnnxRuntimeEngine.load(options.modelPath, options);
    case 'torch':
    case 'tensorrt':
      throw new FatalError('ENGINE_UNAVAILABLE', `engine ${choice} is not built into this detq`);
    case 'auto':
      return OnnxRuntimeEngine.load(options.modelPath, options);
  }
}
