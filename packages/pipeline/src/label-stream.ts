import { EngineFault, ImageError, keyProblem, type DetectParams, type ImageRecord, type ModelInfo } from '@detq/core';
import type { DecodeLimits } from '@detq/imaging';
import { DeviceDecodeError, type EngineInfo, type Frame, type FrameDetections } from '@detq/inference';
import type { ObjectStore } from '@detq/storage';
import type { Batcher } from './batcher';
import type { FramePreparer } from './frame-preparer';
import { errorRecord, toRecord } from './records';

export interface LabelSource {
  /** The record key (path relative to the input root); an unsafe one gets a BAD_KEY record. */
  key: string;
  /** Where to read the bytes. */
  uri: string;
  /** The object's size when a listing gave it: checked against the byte limit before any download. */
  size?: number;
  /** Set when the image must not be read at all (e.g. FORBIDDEN): it becomes its error record. */
  refused?: ImageError;
}

export interface LabelContext {
  store: ObjectStore;
  preparer: FramePreparer;
  /** Shared by every stream of a process: frames of all jobs meet here. */
  batcher: Batcher;
  model: ModelInfo;
  names: readonly string[];
  params: DetectParams;
  /** Images in flight (read, decoded or waiting for the engine): bounds memory whatever the set size. */
  window: number;
  /**
   * Bytes in flight: file bytes read plus RGB decoded on the CPU, so a set of 100 MP photos holds fewer
   * images than a set of thumbnails (default DEFAULT_WINDOW_BYTES). One image is always let through.
   */
  windowBytes?: number;
  /**
   * The tally windowBytes bounds. Streams given one tally stay under windowBytes together (a worker's
   * concurrent chunks); by default each stream keeps its own.
   */
  inFlightBytes?: InFlightBytes;
  /** Keep the decoded RGB of the first N images (for previews). */
  keepRgb?: number;
  limits?: DecodeLimits;
  /** Objects whose listed size is above this are refused (FILE_TOO_LARGE) without being downloaded. */
  maxObjectBytes?: number;
  /** Stops reading and decoding (cancel, lost lock, deadline): the stream throws the signal's reason. */
  signal?: AbortSignal;
}

export const DEFAULT_WINDOW_BYTES = 512 * 1024 * 1024;

/** Images in flight that keep every batch the engine runs at once filled, plus the next ones forming. */
export function engineWindow(batch: number, engine: Pick<EngineInfo, 'parallelBatches'>): number {
  return Math.max(16, batch * ((engine.parallelBatches ?? 1) + 2));
}

/** How many of the latest images the weight guess for an unlisted one looks at. */
const RECENT_WEIGHTS = 64;

/**
 * Bytes held by images in flight. An image is weighed when it starts, before its read lands (a burst of
 * starts would otherwise read a whole count window of 100 MP files at once): by its listed size (file
 * bytes; decoded pixels are added once known), else as the heaviest of the latest images, else (nothing
 * seen yet) as the whole budget. It counts at least that until it is done (its read may land before its
 * decode adds the pixels), more once it weighs more. Only recent images guess, so one huge photo does not
 * slow a long-lived worker's later jobs.
 */
export class InFlightBytes {
  bytes = 0;
  private readonly recent: number[] = [];
  private next = 0;

  /** Weighs an image about to be read; returns what was counted. */
  reserve(listedSize: number | undefined, budget: number): number {
    const weight = listedSize ?? (this.recent.length ? Math.max(...this.recent) : budget);
    this.bytes += weight;
    return weight;
  }

  /** An image now weighs `actual`; returns what it counts from now on. */
  reweigh(counted: number, actual: number): number {
    const next = Math.max(counted, actual);
    this.bytes += next - counted;
    return next;
  }

  /** An image is done and weighed `actual` at most (0: never read): the guesses for the next ones learn from it. */
  settle(counted: number, actual: number): void {
    this.bytes -= counted;
    if (actual === 0) return;
    this.recent[this.next] = actual;
    this.next = (this.next + 1) % RECENT_WEIGHTS;
  }
}

export interface LabelledImage {
  record: ImageRecord;
  rgb?: Uint8Array;
}

/**
 * Labels one image: read, decode, detect. Failures become the image's error record, except the ones
 * that are not the image's: an engine fault or an abort, which end the stream.
 */
async function labelOne(src: LabelSource, ctx: LabelContext, keepRgb: boolean, held: InFlightBytes, reserved: number): Promise<LabelledImage> {
  let weight = reserved;
  let actual = 0;
  try {
    return await readAndLabel(src, ctx, keepRgb, (bytes) => {
      actual = bytes;
      weight = held.reweigh(weight, bytes);
    });
  } finally {
    held.settle(weight, actual);
  }
}

/** Why an image is not read at all, or undefined. */
function refusalOf(src: LabelSource, ctx: LabelContext): ImageError | undefined {
  // Keys name output files: one that could leave the output root is never read nor written.
  const unsafe = keyProblem(src.key);
  if (unsafe) return new ImageError('BAD_KEY', `the key ${JSON.stringify(src.key)} ${unsafe}`);
  if (src.refused) return src.refused;
  const maxBytes = ctx.maxObjectBytes;
  if (maxBytes !== undefined && src.size !== undefined && src.size > maxBytes)
    return new ImageError('FILE_TOO_LARGE', `the object has ${src.size} bytes, above the limit of ${maxBytes} (not downloaded)`);
  return undefined;
}

/** labelOne's work; `weigh` is told the image's weight in bytes each time it grows. */
async function readAndLabel(src: LabelSource, ctx: LabelContext, keepRgb: boolean, weigh: (bytes: number) => void): Promise<LabelledImage> {
  let bytes: Buffer;
  try {
    bytes = await ctx.store.get(src.uri, ctx.signal ? { signal: ctx.signal } : {});
  } catch (err) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    const e = new ImageError('READ_FAILED', `cannot read ${src.uri}: ${(err as Error).message}`, { cause: err });
    return { record: errorRecord(src.key, e, ctx.model, ctx.params) };
  }
  let weight = bytes.length;
  weigh(weight);
  const addPixels = (frame: Frame) => {
    if (frame.layout === 'encoded') return;
    weight += frame.pixels.length;
    weigh(weight);
  };
  try {
    let img = await ctx.preparer.prepare(bytes, keepRgb);
    addPixels(img.frame);
    let dets: FrameDetections;
    try {
      dets = await ctx.batcher.detect(img.frame, ctx.params);
    } catch (err) {
      if (!(err instanceof DeviceDecodeError)) throw err;
      // The GPU could not decode this one: sharp decodes it, so it gets the CPU path's result or error code.
      img = await ctx.preparer.decode(bytes, keepRgb);
      addPixels(img.frame);
      dets = await ctx.batcher.detect(img.frame, ctx.params);
    }
    const record = toRecord(src.key, img.width, img.height, dets, ctx.names, ctx.model, ctx.params);
    return img.rgb ? { record, rgb: img.rgb } : { record };
  } catch (err) {
    if (err instanceof EngineFault) throw err;
    return { record: errorRecord(src.key, err, ctx.model, ctx.params) };
  }
}

/**
 * The streaming core of both `detq label` and the distributed worker: images flow through read ->
 * decode/letterbox -> shared batcher -> engine with at most `window` images and `windowBytes` bytes in
 * flight, so decoding overlaps inference and memory stays bounded whatever the image size. Records come out in input order.
 */
export async function* labelStream(sources: AsyncIterable<LabelSource>, ctx: LabelContext): AsyncGenerator<LabelledImage> {
  const inFlight: Promise<LabelledImage>[] = [];
  const held = ctx.inFlightBytes ?? new InFlightBytes();
  const budget = ctx.windowBytes ?? DEFAULT_WINDOW_BYTES;
  let n = 0;
  const start = (src: LabelSource) => {
    const keepRgb = n++ < (ctx.keepRgb ?? 0);
    const refusal = refusalOf(src, ctx);
    const p = refusal
      ? Promise.resolve({ record: errorRecord(src.key, refusal, ctx.model, ctx.params) })
      : labelOne(src, ctx, keepRgb, held, held.reserve(src.size, budget));
    // Images behind one that ended the stream are never awaited: their rejections must not go unhandled.
    p.catch(() => undefined);
    inFlight.push(p);
  };
  for await (const src of sources) {
    ctx.signal?.throwIfAborted();
    start(src);
    while (inFlight.length >= ctx.window || (inFlight.length > 1 && held.bytes > budget)) yield await inFlight.shift()!;
  }
  while (inFlight.length > 0) yield await inFlight.shift()!;
}
