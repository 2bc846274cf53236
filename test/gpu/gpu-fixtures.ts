import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, sharedDir } from '@detq/core';
import { decodeImage, type DecodedImage } from '@detq/imaging';

/** ../shared, or DETQ_SHARED_DIR on the GPU machine where ../shared does not travel. */
export const COCO128 = join(sharedDir(), 'datasets', 'coco128');
export const COCO_IMAGES = join(COCO128, 'images', 'train2017');
export const COCO_LABELS = join(COCO128, 'labels', 'train2017');
export const TORCHSCRIPT = join(sharedDir(), 'models', 'yolo11n-cuda-fp32.torchscript');
/** ONNX references for the parity gate (carried by device-pack.sh into .device/ort). */
export const ONNX_DYN = join(sharedDir(), 'models', 'yolo11n-dyn.onnx');
export const ONNX_INT8_320 = join(sharedDir(), 'models', 'yolo11n_int8_320.onnx');
/** CPU (onnxruntime-cpu) outputs made on the dev machine by test/gpu/make-cpu-reference.sh. */
export const CPU_REFERENCE = process.env.DETQ_GPU_REFERENCE ?? join(REPO_ROOT, '.device', 'ref');

export function cocoImageNames(limit = Infinity): string[] {
  return readdirSync(COCO_IMAGES).filter((f) => f.endsWith('.jpg')).sort().slice(0, limit);
}

export async function decodeCoco(name: string): Promise<DecodedImage> {
  return decodeImage(await readFile(join(COCO_IMAGES, name)));
}

/** Deterministic pseudo-random numbers (tests must not depend on Math.random). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
