import { ImageError, type DetectParams, type ImageRecord, type ModelInfo } from '@detq/core';
import type { DecodeLimits } from '@detq/imaging';
import { DeviceDecodeError, type Frame, type FrameDetections } from '@detq/inference';
import type { ObjectStore } from '@detq/storage';
import type { Batcher } from './batcher';
import type { FramePreparer } from './frame-preparer';
import { errorRecord, toRecord } from './records';

export interface LabelSource {
  /** The record key (path relative to the input root). */
  key: string;
  /** Where to read the bytes. */
  uri: string;
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
  /** Keep the decoded RGB of the first N images (for previews). */
  keepRgb?: number;
  limits?: DecodeLimits;
}

export const DEFAULT_WINDOW_BYTES = 512 * 1024 * 1024;

export interface LabelledImage {
  record: ImageRecord;
  rgb?: Uint8Array;
}

/** Labels one image: read, decode, detect. Never throws: failures become the image's error record. */
async function labelOne(src: LabelSource, ctx: LabelContext, keepRgb: boolean, held: { bytes: number }): Promise<LabelledImage> {
  let bytes: Buffer;
  try {
    bytes = await ctx.store.get(src.uri);
  } catch (err) {
    const e = new ImageError('READ_FAILED', `cannot read ${src.uri}: ${(err as Error).message}`, { cause: err });
    return { record: errorRecord(src.key, e, ctx.model, ctx.params) };
  }
  let weight = bytes.length;
  held.bytes += weight;
  const weigh = (frame: Frame) => {
    if (frame.layout === 'encoded') return;
    held.bytes += frame.pixels.length;
    weight += frame.pixels.length;
  };
  try {
    let img = await ctx.preparer.prepare(bytes, keepRgb);
    weigh(img.frame);
    let dets: FrameDetections;
    try {
      dets = await ctx.batcher.detect(img.frame, ctx.params);
    } catch (err) {
      if (!(err instanceof DeviceDecodeError)) throw err;
      // The GPU could not decode this one: sharp decodes it, so it gets the CPU path's result or error code.
      img = await ctx.preparer.decode(bytes, keepRgb);
      weigh(img.frame);
      dets = await ctx.batcher.detect(img.frame, ctx.params);
    }
    const record = toRecord(src.key, img.width, img.height, dets, ctx.names, ctx.model, ctx.params);
    return img.rgb ? { record, rgb: img.rgb } : { record };
  } catch (err) {
    return { record: errorRecord(src.key, err, ctx.model, ctx.params) };
  } finally {
    held.bytes -= weight;
  }
}

/**
 * The streaming core of both `detq label` and the distributed worker: images flow through read ->
 * decode/letterbox -> shared batcher -> engine with at most `window` images and `windowBytes` bytes in
 * flight, so decoding overlaps inference and memory stays bounded whatever the image size. Records come out in input order.
 */
export async function* labelStream(sources: AsyncIterable<LabelSource>, ctx: LabelContext): AsyncGenerator<LabelledImage> {
  const inFlight: Promise<LabelledImage>[] = [];
  const held = { bytes: 0 };
  const budget = ctx.windowBytes ?? DEFAULT_WINDOW_BYTES;
  let n = 0;
  for await (const src of sources) {
    inFlight.push(labelOne(src, ctx, n++ < (ctx.keepRgb ?? 0), held));
    while (inFlight.length >= ctx.window || (inFlight.length > 1 && held.bytes > budget)) yield await inFlight.shift()!;
  }
  while (inFlight.length > 0) yield await inFlight.shift()!;
}
