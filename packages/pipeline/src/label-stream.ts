import { EngineFault, ImageError, type DetectParams, type ImageRecord, type ModelInfo } from '@detq/core';
import type { DecodeLimits } from '@detq/imaging';
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
  /** Keep the decoded RGB of the first N images (for previews). */
  keepRgb?: number;
  limits?: DecodeLimits;
  /** Stops reading and decoding (cancel, lost lock, deadline): the stream throws the signal's reason. */
  signal?: AbortSignal;
}

export interface LabelledImage {
  record: ImageRecord;
  rgb?: Uint8Array;
}

/**
 * Labels one image: read, decode, detect. Failures become the image's error record, except the ones
 * that are not the image's: an engine fault or an abort, which end the stream.
 */
async function labelOne(src: LabelSource, ctx: LabelContext, keepRgb: boolean): Promise<LabelledImage> {
  let bytes: Buffer;
  try {
    bytes = await ctx.store.get(src.uri, ctx.signal ? { signal: ctx.signal } : {});
  } catch (err) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    const e = new ImageError('READ_FAILED', `cannot read ${src.uri}: ${(err as Error).message}`, { cause: err });
    return { record: errorRecord(src.key, e, ctx.model, ctx.params) };
  }
  try {
    const img = await ctx.preparer.prepare(bytes, keepRgb);
    const dets = await ctx.batcher.detect(img.frame, ctx.params);
    const record = toRecord(src.key, img.width, img.height, dets, ctx.names, ctx.model, ctx.params);
    return img.rgb ? { record, rgb: img.rgb } : { record };
  } catch (err) {
    if (err instanceof EngineFault) throw err;
    return { record: errorRecord(src.key, err, ctx.model, ctx.params) };
  }
}

/**
 * The streaming core of both `detq label` and the distributed worker: images flow through read ->
 * decode/letterbox -> shared batcher -> engine with at most `window` in flight, so decoding overlaps
 * inference and memory stays bounded. Records come out in input order.
 */
export async function* labelStream(sources: AsyncIterable<LabelSource>, ctx: LabelContext): AsyncGenerator<LabelledImage> {
  const inFlight: Promise<LabelledImage>[] = [];
  let n = 0;
  const start = (src: LabelSource) => {
    const p = labelOne(src, ctx, n++ < (ctx.keepRgb ?? 0));
    // Images behind one that ended the stream are never awaited: their rejections must not go unhandled.
    p.catch(() => undefined);
    inFlight.push(p);
  };
  for await (const src of sources) {
    ctx.signal?.throwIfAborted();
    start(src);
    if (inFlight.length >= ctx.window) yield await inFlight.shift()!;
  }
  while (inFlight.length > 0) yield await inFlight.shift()!;
}
