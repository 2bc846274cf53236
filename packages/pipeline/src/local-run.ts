import { basename } from 'node:path';
import type { DetectParams, OutputFormat } from '@detq/core';
import { renderPreview, type DecodeLimits } from '@detq/imaging';
import type { EngineChoice } from '@detq/inference';
import { OutputWriter, type CocoIdMap } from '@detq/formats';
import { RoutingStore, type ObjectStore } from '@detq/storage';
import { Batcher } from './batcher';
import { FramePreparer } from './frame-preparer';
import { listInputs } from './input-lister';
import { labelStream } from './label-stream';
import { openEngine } from './open-engine';

export interface LocalRunOptions {
  input: string;
  out: string;
  model?: string;
  engine?: EngineChoice;
  half?: boolean;
  /** 'cpu' decodes every image with sharp even where the engine decodes JPEGs on the GPU. */
  decode?: 'auto' | 'cpu';
  params: DetectParams;
  imgsz?: [number, number];
  batch: number;
  threads?: number;
  formats: OutputFormat[];
  previews: number;
  saveConf?: boolean;
  cocoIds?: CocoIdMap;
  limits?: DecodeLimits;
  store?: ObjectStore;
}

export interface Progress {
  done: number;
  /** Known once the input has been listed. */
  total?: number;
  errors: number;
  elapsedMs: number;
}

export interface RunSummary {
  images: number;
  labelled: number;
  detections: number;
  errors: number;
  errorsByCode: Record<string, number>;
  /** Model resolution and engine start-up. */
  loadSeconds: number;
  /** Labelling time, from the first image read to the last output written. */
  seconds: number;
  imagesPerSecond: number;
  model: { name: string; sha256: string; engine: string; imgsz: [number, number]; runtime: string; device: string };
  params: DetectParams;
  outputs: string[];
}

export interface LocalRunHooks {
  progress?: (p: Progress) => void;
  notice?: (line: string) => void;
}

/** `detq label`: lists the input, labels every image through the shared core and writes all outputs. */
export async function runLocal(options: LocalRunOptions, hooks: LocalRunHooks = {}): Promise<RunSummary> {
  const store = options.store ?? new RoutingStore();
  const loadStarted = Date.now();
  const opened = await openEngine({
    ...(options.model !== undefined && { model: options.model }),
    engine: options.engine ?? 'onnxruntime-cpu',
    maxBatch: options.batch,
    ...(options.threads !== undefined && { threads: options.threads }),
    ...(options.imgsz && { imgsz: options.imgsz }),
    ...(options.half !== undefined && { half: options.half }),
    ...(hooks.notice && { notice: hooks.notice }),
    store,
  });
  const { engine, model, names } = opened;
  const batcher = new Batcher(engine, { maxBatch: options.batch, maxWaitMs: 50 });
  const started = Date.now();
  try {
    const writer = await OutputWriter.open({
      outUri: options.out,
      formats: options.formats,
      names,
      store,
      ...(options.saveConf !== undefined && { saveConf: options.saveConf }),
      ...(options.cocoIds && { cocoIds: options.cocoIds }),
    });
    const progress: Progress = { done: 0, errors: 0, elapsedMs: 0 };
    // The total only serves a progress display: counting lists the input a second time (a second
    // round of LIST requests on s3://), so it runs only when someone watches, alongside labelling.
    if (hooks.progress)
      void (async () => {
        let n = 0;
        for await (const _ of listInputs(options.input, store)) n++;
        progress.total = n;
      })().catch(() => undefined);

    const errorsByCode: Record<string, number> = {};
    let detections = 0;
    const stream = labelStream(listInputs(options.input, store), {
      store,
      preparer: new FramePreparer(engine.info, options.limits, options.decode),
      batcher,
      model,
      names,
      params: options.params,
      // Enough to fill every batch the engine runs at once plus the next ones forming.
      window: Math.max(16, options.batch * ((engine.info.parallelBatches ?? 1) + 2)),
      keepRgb: options.previews,
    });
    for await (const { record, rgb } of stream) {
      await writer.add(record);
      if (record.error) {
        errorsByCode[record.error.code] = (errorsByCode[record.error.code] ?? 0) + 1;
        progress.errors++;
      }
      detections += record.detections.length;
      if (rgb) await writer.writeFile(`previews/${basename(record.key).replace(/\.[^.]+$/, '')}.jpg`, await renderPreview(rgb, record));
      progress.done++;
      progress.elapsedMs = Date.now() - started;
      hooks.progress?.(progress);
    }
    const outputs = await writer.finish();
    const seconds = (Date.now() - started) / 1000;
    return {
      images: progress.done,
      labelled: progress.done - progress.errors,
      detections,
      errors: progress.errors,
      errorsByCode,
      loadSeconds: (started - loadStarted) / 1000,
      seconds,
      imagesPerSecond: progress.done / seconds,
      model: { ...model, runtime: engine.info.runtimeVersion, device: engine.info.device },
      params: options.params,
      outputs,
    };
  } finally {
    await batcher.close();
    await engine.dispose();
    if (store instanceof RoutingStore && !options.store) store.close();
  }
}
