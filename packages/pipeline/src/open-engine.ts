import type { ModelInfo } from '@detq/core';
import { createEngine, type Engine, type EngineChoice } from '@detq/inference';
import { resolveModel, type ResolvedModel, type ResolveModelOptions } from './model-resolver';

export interface OpenEngineOptions extends ResolveModelOptions {
  engine?: EngineChoice;
  threads?: number;
  /** onnxruntime-cpu sessions sharing the threads. */
  sessions?: number;
  maxBatch?: number;
  imgsz?: [number, number];
  half?: boolean;
  /** CUDA device of the GPU engines. */
  device?: number;
  /** Torch: the network as captured CUDA graphs (default true). */
  cudaGraphs?: boolean;
  notice?: (line: string) => void;
}

export interface OpenedEngine {
  engine: Engine;
  /** Provenance stamped on every record. */
  model: ModelInfo;
  names: string[];
  resolved: ResolvedModel;
}

/** Resolves the model and loads it into the chosen engine. */
export async function openEngine(options: OpenEngineOptions = {}): Promise<OpenedEngine> {
  const resolved = await resolveModel(options);
  const engine = await createEngine(options.engine ?? 'onnxruntime-cpu', {
    modelPath: resolved.path,
    numClasses: resolved.metadata.names.length || 80,
    ...(options.threads !== undefined && { threads: options.threads }),
    ...(options.sessions !== undefined && { sessions: options.sessions }),
    ...(options.maxBatch !== undefined && { maxBatch: options.maxBatch }),
    ...((options.imgsz ?? resolved.metadata.imgsz) && { imgsz: options.imgsz ?? resolved.metadata.imgsz }),
    ...(options.half !== undefined && { half: options.half }),
    ...(options.device !== undefined && { device: options.device }),
    ...(options.cudaGraphs !== undefined && { cudaGraphs: options.cudaGraphs }),
    ...(options.notice && { notice: options.notice }),
  });
  const { info } = engine;
  // The model file's names (readModelMetadata reads every kind, TensorRT engine headers included) unless
  // --names overrode them; then whatever the engine itself reports.
  const names = Array.from({ length: info.numClasses }, (_, i) => resolved.metadata.names[i] ?? info.classNames?.[i] ?? String(i));
  return {
    engine,
    names,
    resolved,
    model: { name: resolved.name, sha256: resolved.sha256, engine: info.kind, imgsz: [info.inputHeight, info.inputWidth] },
  };
}
