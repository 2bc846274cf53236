import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addonPath, type NativeAddon, type NativeContext, type NativeFrame, type NativeLoadOptions, type NativeModel } from '@detq/native';
import { computeLetterbox, FatalError, type DetectParams, type EngineKind } from '@detq/core';
import { CONTEXT_STAGED_BYTES, contextProfiles, paddedBatchSizes, stagingCalls, type BatchRange } from './batch-padding';
import { DeviceDecodeError, type Engine, type EngineInfo, type Frame, type FrameOutcome } from './engine';

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
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (err) {
    loadError = new FatalError(
      'ENGINE_UNAVAILABLE',
      `detq native addon at ${addonPath} failed to load: ${(err as Error).message.split('\n')[0]} (rebuild with \`npm run build:native\` on this machine)`,
      { cause: err },
    );
    throw loadError;
  }
  // A build from before the overlapped contexts would size every queue NaN and never run a batch.
  if (!Number.isInteger(addon.batchesPerContext) || addon.batchesPerContext < 1 || !Number.isInteger(addon.maxBatchesPerContext)) {
    loadError = new FatalError('ENGINE_UNAVAILABLE', `detq native addon at ${addonPath} is older than this checkout: rebuild it with \`npm run build:native\``);
    throw loadError;
  }
  // Runtime messages (TensorRT's logger and error recorder) join detq's stderr log; info and debug only
  // with DETQ_DEBUG, dropped in the addon otherwise (a few per batch would each cost the JS thread a call).
  addon.setLogger((level, message) => process.stderr.write(`detq: native ${level}: ${message}\n`), process.env.DETQ_DEBUG ? 'debug' : 'warn');
  cached = addon;
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

/**
 * From this largest batch up, a GPU engine runs one execution context unless told otherwise; below it, two.
 * Measured on an H100 (native/README.md, "Measured 2026-12-06, night"): at batch 32 one context keeping
 * the addon's three batches on the device labelled 4,663 img/s against 4,068 for two contexts with two
 * each (two contexts' hardware JPEG decode calls queue beside each other); at batch 8 one context's thread
 * (JPEG checks, a nearly synchronous decode call, launches) outlasts the network, and two with two each ran
 * 3,164 img/s against 2,916. Batches between were not measured, so they keep the earlier two contexts.
 */
export const ONE_CONTEXT_FROM_BATCH = 32;

/** Batches in flight per context when an engine runs several: at batch 32, two contexts with three each ran 3,830 img/s against 4,068 with two. */
const BATCHES_PER_CONTEXT_OF_SEVERAL = 2;

/**
 * Contexts per engine and batches per context: the options' (createEngine passes the environment's,
 * gpuEnvSchema), else chosen for the batch the network runs at most (the caller's maxBatch within the
 * model's or plan's range, padded up to its min; ONE_CONTEXT_FROM_BATCH; one context keeps the addon's
 * batchesPerContext), never more contexts than a TensorRT plan has profiles. A bad option is refused
 * naming it.
 */
export function gpuSettings(
  addon: Pick<NativeAddon, 'batchesPerContext' | 'maxBatchesPerContext'>,
  options: Pick<NativeEngineOptions, 'contexts' | 'batchesPerContext' | 'maxBatch'>,
  source: Pick<NativeModelSource, 'batchRange' | 'profiles'>,
): { contexts: number; batchesPerContext: number } {
  const most = addon.maxBatchesPerContext;
  if (options.batchesPerContext !== undefined && !(Number.isInteger(options.batchesPerContext) && options.batchesPerContext >= 1 && options.batchesPerContext <= most))
    throw new FatalError('USAGE', `batchesPerContext must be an integer from 1 to ${most} (got ${options.batchesPerContext})`);
  const { min, max } = source.batchRange;
  const largest = Math.max(min, Math.min(options.maxBatch ?? max, max));
  const contexts = options.contexts ?? Math.min(largest >= ONE_CONTEXT_FROM_BATCH ? 1 : 2, source.profiles ?? Infinity);
  return { contexts, batchesPerContext: options.batchesPerContext ?? (contexts === 1 ? addon.batchesPerContext : BATCHES_PER_CONTEXT_OF_SEVERAL) };
}

export interface NativeEngineOptions {
  half?: boolean;
  maxBatch?: number;
  imgsz?: [number, number];
  device?: number;
  /**
   * Execution contexts (each a thread, streams and a JPEG decoder; default by the largest batch, see
   * gpuSettings; createEngine passes DETQ_GPU_CONTEXTS).
   */
  contexts?: number;
  /**
   * Batches each context keeps on the device while its thread stages and decodes the next one (default:
   * see gpuSettings; createEngine passes DETQ_GPU_BATCHES_PER_CONTEXT).
   */
  batchesPerContext?: number;
  /** Torch: replay each padded batch size's network as a CUDA graph (default true; false to compare or to opt out). */
  cudaGraphs?: boolean;
}

/** What a backend's loader adds: its batch range, and for TensorRT the checked plan and its header's facts. */
export interface NativeModelSource {
  batchRange: BatchRange;
  /** TensorRT: optimisation profiles in the plan (one per context); undefined for torch. */
  profiles?: number;
  classNames?: string[];
  load?: Pick<NativeLoadOptions, 'plan' | 'precision' | 'end2end'>;
}

/** The addon's frame for one of ours: letterbox geometry of the oriented size, plus pixels or JPEG bytes. */
function toNativeFrame(f: Frame, inputWidth: number, inputHeight: number): NativeFrame {
  const lb = computeLetterbox(f.width, f.height, inputWidth, inputHeight);
  const geometry = { width: f.width, height: f.height, resizedWidth: lb.resizedWidth, resizedHeight: lb.resizedHeight, left: lb.left, top: lb.top, gain: lb.gain };
  if (f.layout === 'encoded') return { ...geometry, jpeg: f.bytes, orientation: f.orientation };
  if (f.layout !== 'rgb') throw new Error("GPU engines take 'rgb' frames (uint8 RGB at the image's own size) or 'encoded' JPEGs");
  return { ...geometry, pixels: f.pixels };
}

/**
 * A GPU engine over the native addon: one shared model, several execution contexts. Frames arrive as
 * uint8 RGB at their own size ('rgb') or, when the addon has nvJPEG, as JPEG files ('encoded') decoded
 * on the device; letterbox (with the EXIF orientation), network, decode and NMS run on the GPU and only
 * boxes come back. Torch and TensorRT differ only in how the model loads.
 */
export class NativeEngine implements Engine {
  /** infer() calls each context has not answered yet. */
  private readonly outstanding: number[];

  /** Decoded RGB one call may stage: a context's share split over its staging slots. */
  private readonly stagedBytesPerCall: number;

  private constructor(
    readonly info: EngineInfo,
    private readonly contexts: NativeContext[],
    batchesPerContext: number,
  ) {
    this.outstanding = contexts.map(() => 0);
    this.stagedBytesPerCall = Math.floor(CONTEXT_STAGED_BYTES / batchesPerContext);
  }

  static async load(kind: Exclude<EngineKind, 'onnxruntime-cpu'>, modelPath: string, options: NativeEngineOptions, source: NativeModelSource): Promise<NativeEngine> {
    const reason = nativeUnavailableReason(kind);
    if (reason) throw new FatalError('ENGINE_UNAVAILABLE', `engine ${kind} is not available: ${reason}`);
    const addon = loadNativeAddon();
    const { contexts: contextCount, batchesPerContext } = gpuSettings(addon, options, source);
    // Refused before anything loads: more contexts than the plan has profiles.
    const profiles = contextProfiles(contextCount, source.profiles);
    let model: NativeModel;
    try {
      model = await addon.loadModel({
        backend: kind,
        path: modelPath,
        device: options.device ?? 0,
        half: options.half ?? false,
        maxBatch: source.batchRange.max,
        batchSizes: paddedBatchSizes(source.batchRange),
        cudaGraphs: options.cudaGraphs ?? true,
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
    const contexts = profiles.map((p) => model.createContext(p, batchesPerContext));
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
        encodedFormats: addon.buildInfo.nvjpeg ? ['jpeg'] : [],
        parallelBatches: contexts.length * batchesPerContext,
        device: m.device,
        runtimeVersion: m.runtimeVersion,
        numClasses: m.outputLayout === 'raw' ? m.numClasses : (source.classNames?.length ?? 0),
        ...(source.classNames?.length && { classNames: source.classNames }),
        outputLayout: m.outputLayout,
        cudaGraphs: m.cudaGraphs,
      },
      contexts,
      batchesPerContext,
    );
  }

  /**
   * Runs one call on the context with the fewest calls outstanding: a context that finished early takes
   * the next batch instead of it queueing behind a slower one.
   */
  private async onContext<T>(call: (ctx: NativeContext) => Promise<T>): Promise<T> {
    let best = 0;
    for (let i = 1; i < this.contexts.length; i++) if (this.outstanding[i]! < this.outstanding[best]!) best = i;
    const ctx = this.contexts[best];
    if (!ctx) throw new Error('engine disposed');
    this.outstanding[best]!++;
    try {
      return await call(ctx);
    } finally {
      this.outstanding[best]!--;
    }
  }

  async infer(frames: readonly Frame[], params: DetectParams): Promise<FrameOutcome[]> {
    const { inputWidth, inputHeight, maxBatch } = this.info;
    const native = frames.map((f) => toNativeFrame(f, inputWidth, inputHeight));
    const calls = stagingCalls(native, maxBatch, this.stagedBytesPerCall).map((call) =>
      this.onContext((ctx) => ctx.infer(call, params)).then((out) =>
        out.map((d) => (d.decodeError === undefined ? { rows: d.rows, count: d.count } : new DeviceDecodeError(d.decodeError))),
      ),
    );
    return (await Promise.all(calls)).flat();
  }

  /**
   * Engine-only milliseconds per batch: `frames` (real images) are put on the device once, then each
   * batch runs letterbox, network, decode + NMS and copies the boxes back.
   */
  async benchmark(frames: readonly Frame[], iterations: number, params: DetectParams): Promise<number[]> {
    const { inputWidth, inputHeight } = this.info;
    return Array.from(await this.onContext((ctx) => ctx.benchmark(frames.map((f) => toNativeFrame(f, inputWidth, inputHeight)), iterations, params)));
  }

  async dispose(): Promise<void> {
    const contexts = this.contexts.splice(0);
    await Promise.all(contexts.map((c) => c.dispose()));
  }
}
