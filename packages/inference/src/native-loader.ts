import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addonPath, type NativeAddon, type NativeContext, type NativeFrame, type NativeLoadOptions, type NativeModel } from '@detq/native';
import { computeLetterbox, FatalError, type DetectParams, type EngineKind } from '@detq/core';
import { contextProfiles, paddedBatchSizes, type BatchRange } from './batch-padding';
import type { Engine, EngineInfo, Frame, FrameDetections } from './engine';

let cached: NativeAddon | undefined;
let loadError: Error | undefined;

/**
 * The compiled addon, or ONE actionable error saying how to get it. detq's CPU engine never needs it,
 * so nothing loads it until a GPU engine or `detq info` asks.
 */
export function loadNativeAddon(): NativeAddon {
  if (cached) return cached;
  if (loadError) throw loadError;
  if (!existsSync(addonPath)) {
    loadError = new FatalError(
      'ENGINE_UNAVAILABLE',
      'detq native addon not built: run `npm run build:native` (needs the CUDA toolkit; LibTorch and/or TensorRT for the torch/tensorrt engines)',
    );
    throw loadError;
  }
  try {
    cached = createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (err) {
    loadError = new FatalError(
      'ENGINE_UNAVAILABLE',
      `detq native addon at ${addonPath} failed to load: ${(err as Error).message.split('\n')[0]} (rebuild with \`npm run build:native\` on this machine)`,
      { cause: err },
    );
    throw loadError;
  }
  // Runtime messages (TensorRT's logger and error recorder) join detq's stderr log; info only with DETQ_DEBUG.
  cached.setLogger((level, message) => {
    if (level === 'error' || level === 'warn' || process.env.DETQ_DEBUG) process.stderr.write(`detq: native ${level}: ${message}\n`);
  });
  return cached;
}

/** Why a GPU engine of this kind cannot run here, or undefined when it can (addon, backend, device). */
export function nativeUnavailableReason(kind: Exclude<EngineKind, 'onnxruntime-cpu'>): string | undefined {
  let addon: NativeAddon;
  try {
    addon = loadNativeAddon();
  } catch (err) {
    return (err as Error).message;
  }
  const version = kind === 'torch' ? addon.buildInfo.torch : addon.buildInfo.tensorrt;
  if (!version)
    return kind === 'torch'
      ? 'the native addon was built without LibTorch (set Torch_DIR or install PyTorch, then `npm run build:native`)'
      : 'the native addon was built without TensorRT (set TENSORRT_ROOT, then `npm run build:native`)';
  const cuda = addon.cudaInfo();
  if (!cuda.devices.length) return `no CUDA device: ${cuda.error ?? 'none found'}`;
  return undefined;
}

export interface NativeEngineOptions {
  half?: boolean;
  maxBatch?: number;
  imgsz?: [number, number];
  device?: number;
  /** Execution contexts (each a thread + stream): two let one copy images while the other computes. */
  contexts?: number;
}

/** What a backend's loader adds: its batch range, and for TensorRT the checked plan and its header's facts. */
export interface NativeModelSource {
  batchRange: BatchRange;
  /** TensorRT: optimisation profiles in the plan (one per context); undefined for torch. */
  profiles?: number;
  classNames?: string[];
  load?: Pick<NativeLoadOptions, 'plan' | 'precision' | 'end2end'>;
}

/**
 * A GPU engine over the native addon: one shared model, several execution contexts. Frames arrive as
 * uint8 RGB at their own size ('rgb'); letterbox, network, decode and NMS run on the GPU and only
 * boxes come back. Torch and TensorRT differ only in how the model loads.
 */
export class NativeEngine implements Engine {
  private next = 0;

  private constructor(
    readonly info: EngineInfo,
    private readonly contexts: NativeContext[],
  ) {}

  static async load(kind: Exclude<EngineKind, 'onnxruntime-cpu'>, modelPath: string, options: NativeEngineOptions, source: NativeModelSource): Promise<NativeEngine> {
    const reason = nativeUnavailableReason(kind);
    if (reason) throw new FatalError('ENGINE_UNAVAILABLE', `engine ${kind} is not available: ${reason}`);
    const addon = loadNativeAddon();
    // Refused before anything loads: more contexts than the plan has profiles.
    const profiles = contextProfiles(options.contexts ?? 2, source.profiles);
    let model: NativeModel;
    try {
      model = await addon.loadModel({
        backend: kind,
        path: modelPath,
        device: options.device ?? 0,
        half: options.half ?? false,
        maxBatch: source.batchRange.max,
        batchSizes: paddedBatchSizes(source.batchRange),
        ...(options.imgsz && { inputHeight: options.imgsz[0], inputWidth: options.imgsz[1] }),
        ...source.load,
      });
    } catch (err) {
      throw new FatalError('BAD_MODEL', `cannot load ${modelPath} on ${kind}: ${(err as Error).message}`, { cause: err });
    }
    const m = model.info;
    // Each context warms every padded batch size up on its own thread during creation (cuDNN
    // autotuning is per thread in PyTorch; TensorRT loads tactics per context and profile); an empty
    // infer() settles once that is done, so the cost lands in load() and not in the first batches.
    const contexts = profiles.map((p) => model.createContext(p));
    try {
      await Promise.all(contexts.map((c) => c.infer([], { conf: 0.25, iou: 0.7, maxDet: 300, agnosticNms: false, multiLabel: false })));
    } catch (err) {
      await Promise.all(contexts.map((c) => c.dispose()));
      throw new FatalError('BAD_MODEL', `cannot run ${modelPath} on ${kind}: ${(err as Error).message}`, { cause: err });
    }
    return new NativeEngine(
      {
        kind,
        precision: m.precision,
        inputWidth: m.inputWidth,
        inputHeight: m.inputHeight,
        maxBatch: m.maxBatch,
        accepts: 'rgb',
        device: m.device,
        runtimeVersion: m.runtimeVersion,
        numClasses: m.outputLayout === 'raw' ? m.numClasses : (source.classNames?.length ?? 0),
        ...(source.classNames?.length && { classNames: source.classNames }),
        outputLayout: m.outputLayout,
      },
      contexts,
    );
  }

  /** The context the next chunk goes to (round robin: their queues stay evenly filled). */
  private context(): NativeContext {
    const ctx = this.contexts[this.next++ % this.contexts.length];
    if (!ctx) throw new Error('engine disposed');
    return ctx;
  }

  async infer(frames: readonly Frame[], params: DetectParams): Promise<FrameDetections[]> {
    const { inputWidth, inputHeight, maxBatch } = this.info;
    const native: NativeFrame[] = frames.map((f) => {
      if (f.layout !== 'rgb') throw new Error(`${this.info.kind} engine takes 'rgb' frames (uint8 RGB at the image's own size)`);
      const lb = computeLetterbox(f.width, f.height, inputWidth, inputHeight);
      return { pixels: f.pixels, width: f.width, height: f.height, resizedWidth: lb.resizedWidth, resizedHeight: lb.resizedHeight, left: lb.left, top: lb.top, gain: lb.gain };
    });
    const chunks: Promise<FrameDetections[]>[] = [];
    for (let i = 0; i < native.length; i += maxBatch) chunks.push(this.context().infer(native.slice(i, i + maxBatch), params));
    return (await Promise.all(chunks)).flat();
  }

  /** Engine-only milliseconds per batch (device-resident images through letterbox, network and NMS). */
  async benchmark(batch: number, iterations: number, params: DetectParams, source: [number, number] = [640, 480]): Promise<number[]> {
    return Array.from(await this.context().benchmark(batch, iterations, source[0], source[1], params));
  }

  async dispose(): Promise<void> {
    const contexts = this.contexts.splice(0);
    await Promise.all(contexts.map((c) => c.dispose()));
  }
}
