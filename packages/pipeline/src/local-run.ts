import { basename, join } from 'node:path';
import { buildRunSummary, EngineFault, FatalError, type DetectParams, type OutputFormat, type RunSummary } from '@detq/core';
import { renderPreview, type DecodeLimits } from '@detq/imaging';
import type { EngineChoice } from '@detq/inference';
import { OutputWriter, OUTPUT_FILES, type CocoIdMap } from '@detq/formats';
import { isS3Uri, joinUri, RoutingStore, type ObjectStore } from '@detq/storage';
import { Batcher } from './batcher';
import { FramePreparer } from './frame-preparer';
import { describeInput, inputFromArgument, listImages, noImagesMessage, type InputFilter, type ListedImage } from './input-lister';
import { engineWindow, labelStream } from './label-stream';
import { openEngine } from './open-engine';
import { readResumeState, type ResumeState } from './resume';

export interface LocalRunOptions extends InputFilter {
  input: string;
  out: string;
  model?: string;
  /** --names: class names file overriding the model's. */
  names?: string;
  engine?: EngineChoice;
  half?: boolean;
  /** Torch: the network as captured CUDA graphs (default true). */
  cudaGraphs?: boolean;
  /** 'cpu' decodes every image with sharp even where the engine decodes JPEGs on the GPU. */
  decode?: 'auto' | 'cpu';
  params: DetectParams;
  imgsz?: [number, number];
  batch: number;
  threads?: number;
  /** onnxruntime-cpu sessions sharing the threads. */
  sessions?: number;
  formats: OutputFormat[];
  previews: number;
  saveConf?: boolean;
  cocoIds?: CocoIdMap;
  limits?: DecodeLimits;
  store?: ObjectStore;
  /** An input with no images is not an error (nightly pipelines): empty outputs, exit 0. */
  allowEmpty?: boolean;
  /** Skip the keys already in <out>/detections.jsonl (same model and params), append the rest. */
  resume?: boolean;
}

export interface Progress {
  done: number;
  /** Known once the input has been listed. */
  total?: number;
  errors: number;
  elapsedMs: number;
}


export interface LocalRunHooks {
  progress?: (p: Progress) => void;
  notice?: (line: string) => void;
}

/** `detq label`: lists the input, labels every image through the shared core and writes all outputs. */
export async function runLocal(options: LocalRunOptions, hooks: LocalRunHooks = {}): Promise<RunSummary> {
  const store = options.store ?? new RoutingStore();
  const closeStore = () => store instanceof RoutingStore && !options.store && store.close();
  const loadStarted = Date.now();
  const filter: InputFilter = { ...(options.include && { include: options.include }), ...(options.exclude && { exclude: options.exclude }) };
  let opened: Awaited<ReturnType<typeof openEngine>>;
  let spec: Awaited<ReturnType<typeof inputFromArgument>>;
  let first: IteratorResult<ListedImage>;
  const listing = async function* () {
    yield* listImages(spec, { store, ...filter });
  };
  const images = listing();
  try {
    spec = await inputFromArgument(options.input, store);
    // Look at the input before loading a model: an empty or mistyped one fails fast.
    first = await images.next();
    if (first.done && !options.allowEmpty) throw new FatalError('INPUT_NOT_FOUND', noImagesMessage(spec, filter));
    if (options.resume && isS3Uri(options.out)) throw new FatalError('USAGE', '--resume needs a local --out (an s3:// output is uploaded only at the end)');
    opened = await openEngine({
      ...(options.model !== undefined && { model: options.model }),
      ...(options.names !== undefined && { names: options.names }),
      engine: options.engine ?? 'onnxruntime-cpu',
      maxBatch: options.batch,
      ...(options.threads !== undefined && { threads: options.threads }),
      ...(options.sessions !== undefined && { sessions: options.sessions }),
      ...(options.imgsz && { imgsz: options.imgsz }),
      ...(options.half !== undefined && { half: options.half }),
      ...(options.cudaGraphs !== undefined && { cudaGraphs: options.cudaGraphs }),
      ...(hooks.notice && { notice: hooks.notice }),
      store,
    });
  } catch (err) {
    await images.return(undefined);
    closeStore();
    throw err;
  }
  const { engine, model, names } = opened;
  const batcher = new Batcher(engine, { maxBatch: options.batch, maxWaitMs: 50 });
  const started = Date.now();
  try {
    const resumed: ResumeState | undefined = options.resume
      ? await readResumeState(join(options.out, OUTPUT_FILES.jsonl), { model, params: options.params })
      : undefined;
    const writer = await OutputWriter.open({
      outUri: options.out,
      formats: options.formats,
      names,
      store,
      ...(options.saveConf !== undefined && { saveConf: options.saveConf }),
      ...(options.cocoIds && { cocoIds: options.cocoIds }),
      ...(resumed && { append: true }),
    });
    const progress: Progress = { done: 0, errors: 0, elapsedMs: 0 };
    // The total only serves a progress display: counting lists the input a second time (a second
    // round of LIST requests on s3://), so it runs only when someone watches, alongside labelling.
    if (hooks.progress)
      void (async () => {
        let n = 0;
        for await (const image of listImages(spec, { store, ...filter })) if (!resumed?.keys.has(image.key)) n++;
        progress.total = n;
      })().catch(() => undefined);

    const errorsByCode: Record<string, number> = { ...resumed?.errorsByCode };
    let detections = resumed?.detections ?? 0;
    const todo = async function* () {
      if (first.done) return;
      for (let next: IteratorResult<ListedImage, void> = first; !next.done; next = await images.next()) if (!resumed?.keys.has(next.value.key)) yield next.value;
    };
    const stream = labelStream(todo(), {
      store,
      preparer: new FramePreparer(engine.info, options.limits, options.decode),
      batcher,
      model,
      names,
      params: options.params,
      window: engineWindow(options.batch, engine.info),
      keepRgb: options.previews,
    });
    for await (const { record, rgb } of stream) {
      await writer.add(record);
      if (record.error) {
        errorsByCode[record.error.code] = (errorsByCode[record.error.code] ?? 0) + 1;
        progress.errors++;
      }
      detections += record.detections.length;
      if (rgb) await writer.writeFile(`${basename(record.key).replace(/\.[^.]+$/, '')}.jpg`, await renderPreview(rgb, record), 'previews');
      progress.done++;
      progress.elapsedMs = Date.now() - started;
      hooks.progress?.(progress);
    }
    const files = await writer.finish();
    const total = progress.done + (resumed?.total ?? 0);
    const failed = progress.errors + (resumed?.failed ?? 0);
    const { info } = engine;
    const summary = buildRunSummary({
      input: describeInput(spec),
      output: options.out,
      counts: { total, labelled: total - failed, failed, detections, resumed: resumed?.total ?? 0 },
      errorsByCode,
      startedAt: started,
      finishedAt: Date.now(),
      loadSeconds: (started - loadStarted) / 1000,
      model,
      engines: [{ kind: info.kind, runtimeVersion: info.runtimeVersion, device: info.device, precision: info.precision }],
      params: options.params,
      files,
    });
    await store.put(joinUri(options.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`, 'application/json');
    return summary;
  } catch (err) {
    // A broken engine is not the images' fault: the run stops instead of marking every image failed.
    if (err instanceof EngineFault) throw new FatalError('ENGINE_UNAVAILABLE', err.message, { cause: err });
    throw err;
  } finally {
    await images.return(undefined);
    await batcher.close();
    await engine.dispose();
    closeStore();
  }
}
