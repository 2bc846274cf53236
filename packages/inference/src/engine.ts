import type { DetectParams, EngineKind, Letterbox } from '@detq/core';

/**
 * One decoded image on its way into an engine.
 * - 'letterboxed': uint8 RGB HWC already letterboxed to the engine's input size (CPU path: sharp does it).
 * - 'rgb': uint8 RGB HWC at the image's own size (GPU path: the engine letterboxes on the device).
 */
export interface DecodedFrame {
  layout: 'letterboxed' | 'rgb';
  pixels: Uint8Array;
  /** Size of `pixels` (for 'letterboxed' this is the engine input size). */
  width: number;
  height: number;
  /** Present for 'letterboxed' frames: how the source maps into the input. */
  letterbox?: Letterbox;
}

export type EncodedFormat = 'jpeg';

/**
 * 'encoded': the file's bytes, for engines that decode on the device (nvJPEG). Only the header has been
 * read (limits applied); the EXIF orientation is applied by the engine while letterboxing.
 */
export interface EncodedFrame {
  layout: 'encoded';
  format: EncodedFormat;
  bytes: Uint8Array;
  /** Oriented size (after EXIF orientation), as the header declares it. */
  width: number;
  height: number;
  /** EXIF orientation 1..8. */
  orientation: number;
}

export type Frame = DecodedFrame | EncodedFrame;

/**
 * The engine could not decode this encoded frame on the device (a stream its decoder does not support,
 * or damaged data): the caller decodes it on the CPU and submits the decoded frame instead.
 */
export class DeviceDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceDecodeError';
  }
}

/** Detections of one frame as packed rows [x1, y1, x2, y2, confidence, classId], in source-image pixels. */
export interface FrameDetections {
  rows: Float32Array;
  count: number;
}

/** What infer() gives for one frame: its detections, or why the device could not decode it. */
export type FrameOutcome = FrameDetections | DeviceDecodeError;

export type Precision = 'fp32' | 'fp16' | 'int8';

export interface EngineInfo {
  kind: EngineKind;
  precision: Precision;
  /** Network input resolution. */
  inputWidth: number;
  inputHeight: number;
  /** Largest batch one infer() call may carry. */
  maxBatch: number;
  /** Which decoded frame layout infer() takes. */
  accepts: DecodedFrame['layout'];
  /** Batches the engine runs at once (GPU: contexts x batches each keeps in flight): how many a batcher keeps in flight. */
  parallelBatches?: number;
  /** Encoded formats infer() also takes as 'encoded' frames (decoded on the device); none when absent. */
  encodedFormats?: readonly EncodedFormat[];
  /** Where it runs, e.g. 'cpu' or 'NVIDIA H100 80GB HBM3'. */
  device: string;
  /** Backend runtime version, e.g. onnxruntime 1.30.0, libtorch 2.11, TensorRT 10.16. */
  runtimeVersion: string;
  numClasses: number;
  /** Class names the model file carries (ONNX metadata, the detq engine header), index-ordered. */
  classNames?: string[];
  /** How the model's output is decoded (see output-layout.ts). */
  outputLayout: 'raw' | 'end2end';
  /** GPU engines: the network replays a captured CUDA graph per padded batch size (torch). */
  cudaGraphs?: boolean;
}

/**
 * An inference backend: frames in, detections out. Pre- and post-processing sit behind this line so a
 * GPU engine can keep images and raw outputs on the device and return only boxes.
 */
export interface Engine {
  readonly info: EngineInfo;
  /** One outcome per frame; a DeviceDecodeError only ever for an 'encoded' frame. */
  infer(frames: readonly Frame[], params: DetectParams): Promise<FrameOutcome[]>;
  dispose(): Promise<void>;
}
