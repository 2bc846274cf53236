import { FatalError } from '@detq/core';

/**
 * How GPU engines pad batches. Every distinct input shape costs cuDNN autotuning (torch) or a
 * TensorRT shape switch, so a run uses a few batch sizes only, all warmed up at load; a batch runs at
 * the smallest of them that holds it. The sizes follow the engine's batch range (TensorRT: its
 * optimisation profile): never below min, never above max, and min, opt and max are always among them.
 */
export interface BatchRange {
  min: number;
  /** The size the engine is tuned for (TensorRT's opt); defaults to max. */
  opt?: number;
  max: number;
}

/** Below this every power of two; from it on every multiple of it (tensor cores like batches of 8). */
const STEP = 8;

/**
 * The batch sizes an engine runs at: 1, 2, 4, 8, then multiples of 8, kept within [min, max], plus
 * min, opt and max themselves. Padding 17 to 24 rather than 32 wastes 7 slots, not 15.
 */
export function paddedBatchSizes(range: BatchRange): number[] {
  const { min, max } = range;
  const opt = range.opt ?? max;
  if (!(Number.isInteger(min) && Number.isInteger(max) && Number.isInteger(opt)) || min < 1 || min > opt || opt > max)
    throw new FatalError('USAGE', `batch range min ${min} / opt ${opt} / max ${max} is not 1 <= min <= opt <= max`);
  const sizes = new Set([min, opt, max]);
  for (let b = 1; b < max; b = b < STEP ? b * 2 : b + STEP) if (b > min) sizes.add(b);
  return [...sizes].sort((a, b) => a - b);
}

/** The size a batch of `batch` frames runs at: the smallest of `sizes` that holds it. */
export function paddedBatch(batch: number, sizes: readonly number[]): number {
  const size = sizes.find((s) => s >= batch);
  if (size === undefined) throw new Error(`batch ${batch} exceeds the engine's largest batch ${sizes[sizes.length - 1]}`);
  return size;
}

/**
 * Which optimisation profile each execution context uses: TensorRT needs a distinct profile per
 * context that runs concurrently (NvInferRuntime.h), so context i gets profile i, and asking for
 * more contexts than the engine has profiles is refused. `profiles` undefined: the engine has none
 * to share (torch), any number of contexts is fine.
 */
export function contextProfiles(contexts: number, profiles: number | undefined): (number | undefined)[] {
  if (!Number.isInteger(contexts) || contexts < 1) throw new FatalError('USAGE', `--contexts must be a positive integer, got ${contexts}`);
  if (profiles === undefined) return Array.from({ length: contexts }, () => undefined);
  if (contexts > profiles)
    throw new FatalError(
      'USAGE',
      `the engine has ${profiles} optimisation profile${profiles === 1 ? '' : 's'}, one per execution context, so it cannot run ${contexts} contexts: ` +
        `rebuild it with \`detq build-engine --contexts ${contexts}\` or set DETQ_GPU_CONTEXTS=${profiles}`,
    );
  return Array.from({ length: contexts }, (_, i) => i);
}

/**
 * Device bytes of decoded RGB one execution context stages at most, over all its staging slots: each
 * engine call gets this divided by the context's batches in flight. At three (1.4 GB a call; the
 * default with one context), a batch of 32 12 MP photos (1.2 GB) runs as one call and 100 MP photos
 * (300 MB each) four to a call, so what a context puts on the device does not grow with the image size
 * (JS weighs encoded frames by their file bytes, which say little about it) nor with its depth.
 */
export const CONTEXT_STAGED_BYTES = 4 * 1024 ** 3;

/**
 * Splits a batch into engine calls of at most `maxBatch` frames and `maxBytes` bytes of decoded RGB
 * (width x height x 3, an RGB frame's pixels or a JPEG's decode), in order; a frame above `maxBytes`
 * goes alone.
 */
export function stagingCalls<F extends { width: number; height: number }>(frames: readonly F[], maxBatch: number, maxBytes: number): F[][] {
  const calls: F[][] = [];
  let call: F[] = [];
  let bytes = 0;
  for (const f of frames) {
    const rgb = f.width * f.height * 3;
    if (call.length === maxBatch || (call.length > 0 && bytes + rgb > maxBytes)) {
      calls.push(call);
      call = [];
      bytes = 0;
    }
    call.push(f);
    bytes += rgb;
  }
  if (call.length) calls.push(call);
  return calls;
}
