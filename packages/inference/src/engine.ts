import type { DetectParams, EngineKind, Letterbox } from '@detq/core';

/**
 * One decoded image on its way into an engine.
 * - 'letterboxed': uint8 RGB HWC already letterboxed to the engine's input size (CPU path: sharp does it).
 * - 'rgb': uint8 RGB HWC at the image's own size (GPU path: the engine letterboxes on the device).
 */
export interface Frame {
  layout: 'letterboxed' | 'rgb';
  pixels: Uint8Array;
  /** Size of `pixels` (for 'letterboxed' this is the engine input size). */
  width: number;
  height: number;
  /** Present for 'letterboxed' frames: how the source maps into the input. */
  letterbox?: Letterbox;
}

/** Detections of one frame as packed rows [x1, y1, x2, y2, confidence, classId], in source-image pixels. */
export interface FrameDetections {
  rows: Float32Array;
  count: number;
}

export type Precision = 'fp32' | 'fp16' | 'int8';

export interface EngineInfo {
  kind: EngineKind;
  precision: Precision;
  /** Network input resolution. */
  inputWidth: number;
  inputHeight: number;
  /** Largest batch one infer() call may carry. */
  maxBatch: number;
  /** Which frame layout infer() takes. */
  accepts: Frame['layout'];
  /** Where it runs, e.g. 'cpu' or 'NVIDIA H100 80GB HBM3'. */
  device: string;
  /** Backend runtime version, e.g. onnxruntime 1.30.0, libtorch 2.11, TensorRT 10.16. */
  runtimeVersion: string;
  numClasses: number;
  /** Class names the model file carries (ONNX metadata, the detq engine header), index-ordered. */
  classNames?: string[];
  /** How the model's output is decoded (see output-layout.ts). */
  outputLayout: 'raw' | 'end2end';
}

/**
 * An inference backend: frames in, detections out. Pre- and post-processing sit behind this line so a
 * GPU engine can keep images and raw outputs on the device and return only boxes.
 */
export interface Engine {
  readonly info: EngineInfo;
  infer(frames: readonly Frame[], params: DetectParams): Promise<FrameDetections[]>;
  dispose(): Promise<void>;
}
