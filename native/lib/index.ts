/**
 * @detq/native: where the compiled addon lives and the shape of what it exports. Loading it (with
 * one actionable error when it is missing) is @detq/inference's native-loader.
 */
import { fileURLToPath } from 'node:url';

/** `npm run build:native` writes the addon here (cmake-js --out native/build, Release config). */
export const addonPath = fileURLToPath(new URL('../build/Release/detq_native.node', import.meta.url));

export type NativeLogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface NativeBuildInfo {
  /** CUDA toolkit the addon was compiled with, e.g. '13.0'. */
  cudaToolkit: string;
  /** LibTorch version when the torch backend is compiled in. */
  torch: string | null;
  /** TensorRT library version when the tensorrt backend is compiled in. */
  tensorrt: string | null;
  /** nvJPEG version when GPU JPEG decoding is compiled in (JPEG frames are then accepted). */
  nvjpeg: string | null;
}

export interface NativeCudaInfo {
  runtimeVersion: string;
  driverVersion: string | null;
  devices: { index: number; name: string; computeCapability: string; totalMemoryBytes: number; multiprocessors: number }[];
  /** Why no device is usable, when none is. */
  error?: string;
}

/** Letterbox geometry of a frame (computeLetterbox of its oriented size). */
interface NativeFrameGeometry {
  /** Oriented size (EXIF orientation applied). */
  width: number;
  height: number;
  resizedWidth: number;
  resizedHeight: number;
  left: number;
  top: number;
  gain: number;
  /** EXIF orientation 1..8 of the stored pixels (default 1: upright); the letterbox kernel applies it. */
  orientation?: number;
}

/** One image for the GPU: uint8 RGB HWC as stored, or a JPEG file decoded on the device (nvJPEG). */
export type NativeFrame = NativeFrameGeometry & ({ pixels: Uint8Array } | { jpeg: Uint8Array });

export interface NativeLetterbox {
  srcWidth: number;
  srcHeight: number;
  resizedWidth: number;
  resizedHeight: number;
  left: number;
  top: number;
  gain: number;
}

export interface NativeDetectParams {
  conf: number;
  iou: number;
  maxDet: number;
  agnosticNms: boolean;
  multiLabel: boolean;
  classes?: number[];
}

export interface NativeDetections {
  rows: Float32Array;
  count: number;
  /** Set (and no rows) when a JPEG frame could not be decoded on the device: decode it on the CPU. */
  decodeError?: string;
}

export interface NativeModelInfo {
  backend: 'torch' | 'tensorrt';
  runtimeVersion: string;
  device: string;
  deviceIndex: number;
  inputWidth: number;
  inputHeight: number;
  maxBatch: number;
  precision: 'fp32' | 'fp16' | 'int8';
  inputType: 'float32' | 'float16';
  /** Each padded batch size's network replays as a CUDA graph (torch with `cudaGraphs`). */
  cudaGraphs: boolean;
  /** Raw YOLO head, or end-to-end boxes [batch, N, 6] (see @detq/inference output-layout.ts). */
  outputLayout: 'raw' | 'end2end';
  /** 0 for end-to-end outputs: the model's metadata says how many classes. */
  numClasses: number;
  anchors: number;
  /** End-to-end: boxes per image. */
  maxDetections: number;
  /** The padded batch sizes the network runs at (all warmed up at load). */
  batchSizes: number[];
  /** TensorRT: optimisation profiles, one per execution context (0 for torch). */
  profiles: number;
}

/** An execution context: its own thread, CUDA stream and buffers. Calls queue; each settles in order. */
export interface NativeContext {
  infer(frames: NativeFrame[], params: NativeDetectParams): Promise<NativeDetections[]>;
  /** Engine-only timing: `frames` are put on the device once, then each batch runs letterbox, network and NMS; ms per batch. */
  benchmark(frames: NativeFrame[], iterations: number, params: NativeDetectParams): Promise<Float64Array>;
  /** Finishes queued work, frees the GPU resources on the context thread and joins it. */
  dispose(): Promise<void>;
}

/** A model-less context for checking the CUDA kernels against the CPU path. */
export interface NativeKernels {
  /** Letterboxed network input as float32 NCHW (FP16 output converted back when `half`). */
  letterbox(frames: NativeFrame[], width: number, height: number, half: boolean): Promise<Float32Array>;
  /** GPU decode + NMS of raw head outputs [batch, rows, anchors]. */
  postprocess(raw: Float32Array, batch: number, rows: number, anchors: number, letterboxes: NativeLetterbox[], params: NativeDetectParams): Promise<NativeDetections[]>;
  dispose(): Promise<void>;
}

export interface NativeModel {
  readonly info: NativeModelInfo;
  /**
   * `profile`: the TensorRT optimisation profile the context owns (never shared; default: a free one).
   * `batchesInFlight`: its staging slots, 1 to the addon's maxBatchesPerContext (default batchesPerContext).
   */
  createContext(profile?: number, batchesInFlight?: number): NativeContext;
}

export interface NativeLoadOptions {
  backend: 'torch' | 'tensorrt';
  path: string;
  device?: number;
  half?: boolean;
  /** Torch: convolutions in channels-last layout (default true). */
  channelsLast?: boolean;
  /** Torch: replay each padded batch size's forward as a CUDA graph, captured on its second run (default true). */
  cudaGraphs?: boolean;
  maxBatch?: number;
  inputWidth?: number;
  inputHeight?: number;
  /** The padded batch sizes (@detq/inference batch-padding.ts); default: every batch at maxBatch. */
  batchSizes?: number[];
  /** TensorRT: the plan bytes of a checked detq engine file, and what its header says. */
  plan?: Buffer;
  precision?: 'fp32' | 'fp16' | 'int8';
  end2end?: boolean;
}

export interface TensorRtBuildOptions {
  onnxPath: string;
  precision: 'fp32' | 'fp16' | 'int8';
  workspaceMiB: number;
  minShape: string;
  optShape: string;
  maxShape: string;
  /** Identical optimisation profiles, one per execution context. */
  profiles: number;
  device?: number;
  /** Read when present, rewritten after the build. */
  timingCache?: string;
  /** INT8 without Q/DQ nodes (TensorRT 10): float32 NCHW images at the opt size, raw cache file, batch, algorithm. */
  calibrationData?: string;
  calibrationCache?: string;
  calibrationBatch?: number;
  calibrationAlgorithm?: 'minmax' | 'entropy';
}

export interface TensorRtBuildResult {
  plan: Buffer;
  gpu: string;
  computeCapability: string;
  /** major.minor.patch.build of the TensorRT library that built the plan. */
  tensorrt: string;
  precision: 'fp32' | 'fp16' | 'int8';
  quantization: 'none' | 'calibrated' | 'explicit';
  input: string;
  profiles: number;
  seconds: number;
}

export interface NativeAddon {
  buildInfo: NativeBuildInfo;
  /**
   * Batches one execution context works on at once by default (its staging slots): it stages and decodes
   * the next batch while the others run the network, so callers keep this many infer() calls queued on it.
   */
  batchesPerContext: number;
  /** The most staging slots a context may have (createContext's batchesInFlight). */
  maxBatchesPerContext: number;
  cudaInfo(): NativeCudaInfo;
  /** Messages above `level` (default 'debug': all) are dropped in the addon, before they reach the JS thread. */
  setLogger(fn: (level: NativeLogLevel, message: string) => void, level?: NativeLogLevel): void;
  loadModel(options: NativeLoadOptions): Promise<NativeModel>;
  Kernels: new (device: number) => NativeKernels;
  /** Present when the addon was built with TensorRT. */
  buildTensorRtEngine?(options: TensorRtBuildOptions): Promise<TensorRtBuildResult>;
}
