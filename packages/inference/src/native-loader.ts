import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addonPath, type NativeAddon, type NativeContext, type NativeFrame, type NativeModel } from '@detq/native';
import { computeLetterbox, FatalError, type DetectParams, type EngineKind } from '@detq/core';
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

  static async load(kind: Exclude<EngineKind, 'onnxruntime-cpu'>, modelPath: string, options: NativeEngineOptions): Promise<NativeEngine> {
    const reason = nativeUnavailableReason(kind);
    if (reason) throw new FatalError('ENGINE_UNAVAILABLE', `engine ${kind} is not available: ${reason}`);
    const addon = loadNativeAddon();
    let model: NativeModel;
    try {
      model = await addon.loadModel({
        backend: kind,
        path: modelPath,
        device: options.device ?? 0,
        half: options.half ?? false,
        maxBatch: options.maxBatch ?? 32,
        ...(options.imgsz && { inputHeight: options.imgsz[0], inputWidth: options.imgsz[1] }),
      });
    } catch (err) {
      throw new FatalError('BAD_MODEL', `cannot load ${modelPath} on ${kind}: ${(err as Error).message}`, { cause: err });
    }
    const m = model.info;
    const contexts = Array.from({ length: options.contexts ?? 2 }, () => model.createContext());
    // Each context warms up on its own thread (cuDNN autotuning is per thread in PyTorch); an empty
    // infer() settles once that is done, so the cost lands in load() and not in the first batches.
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
        numClasses: m.numClasses,
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
