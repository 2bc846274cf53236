import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { InferenceSession } from 'onnxruntime-node';
import { FatalError, type DetectParams } from '@detq/core';
import type { Engine, EngineInfo, Frame, FrameDetections } from './engine';
import { readOnnxModelMetadata as readModelMetadata } from './onnx-metadata';
import { ModelInputError, onnxOutputDims, withBestClassOutput, withUint8HwcInput, type Uint8InputModel } from './onnx-graph-edits';
import { detectOutputLayout, END2END_VALUES, end2endFlag, type OutputLayout } from './output-layout';
import { decodeEndToEnd, postprocess, postprocessBestClass } from './yolo-postprocess';

export interface OnnxRuntimeEngineOptions {
  /** Inference threads in all, shared out between the sessions; default: every core. */
  threads?: number;
  /** Sessions running batches side by side (default: defaultCpuSessions of the threads). */
  sessions?: number;
  /** Largest batch per run (a static-batch model caps it to its own batch). */
  maxBatch?: number;
  /** Input size for a model with dynamic height/width. */
  imgsz?: [number, number];
  numClasses: number;
}

interface Ready {
  /** The first output's shape as ONNX Runtime infers it. */
  outputShape: (number | string)[];
  version: string;
}

interface Pending {
  resolve: (v: { data: Float32Array; dims: number[] }) => void;
  reject: (e: Error) => void;
}

/**
 * Sessions for `threads` inference threads. A small detector like YOLO11n scales poorly across one
 * session's intra-op threads: every operator ends in a barrier, and any other thread (decoding, NMS) that
 * takes a core stalls the whole session at it. Independent single-thread sessions lose nothing to that;
 * on 2 cores two 1-thread sessions ran 15-17 img/s where one 2-thread session ran 10-12. Past 4 cores,
 * sessions of about 4 threads (the threads shared out evenly) keep the model copies (~50 MB each) few.
 */
export function defaultCpuSessions(threads: number): number {
  return threads <= 4 ? threads : Math.ceil(threads / 4);
}

/** Each session's share of the threads: all of them used, the first `threads % sessions` taking one more. */
export function sessionThreads(threads: number, sessions: number): number[] {
  return Array.from({ length: sessions }, (_, i) => Math.floor(threads / sessions) + (i < threads % sessions ? 1 : 0));
}

/**
 * The options of every onnxruntime-cpu session (and of bench:cpu's bare sessions, so they compare like
 * with like). `modelDir`: where external weights are found when the model is loaded from bytes.
 */
export function cpuSessionOptions(threads: number, modelDir?: string): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Spinning intra-op threads would burn the cores that image decoding needs between runs.
    extra: { session: { intra_op: { allow_spinning: '0' }, ...(modelDir && { model_external_initializers_file_folder_path: modelDir }) } },
  };
}

/** How long dispose() waits for a session to finish the run it is in before terminating its thread. */
const CLOSE_TIMEOUT_MS = 30_000;

/** One session on its worker thread, with the calls it has been given and not answered yet. */
class SessionWorker {
  readonly pending = new Map<number, Pending>();
  /** Settles when the thread has ended, however it ended. */
  readonly exited: Promise<void>;
  /** Settles when the thread has answered every run and released its session, after a close message. */
  readonly closed: Promise<void>;
  private onClosed = () => {};

  constructor(
    readonly worker: Worker,
    onFailure: (err: Error) => void,
  ) {
    this.closed = new Promise((resolve) => (this.onClosed = resolve));
    worker.on('message', (msg: { id: number; data?: Float32Array; dims?: number[]; error?: string; closed?: true }) => {
      if (msg.closed) return this.onClosed();
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error !== undefined || !msg.data || !msg.dims) p.reject(new Error(`onnxruntime: ${msg.error}`));
      else p.resolve({ data: msg.data, dims: msg.dims });
    });
    worker.on('error', onFailure);
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        onFailure(new Error(`onnxruntime worker exited with code ${code}`));
        resolve();
      }),
    );
  }
}

/**
 * The embedded CPU engine: ONNX Runtime sessions, each on its own worker thread, taking letterboxed uint8
 * frames. Each batch goes to the session with the fewest batches waiting.
 */
export class OnnxRuntimeEngine implements Engine {
  private nextId = 0;
  private readonly sessions: SessionWorker[];
  private failure?: Error;
  private disposing = false;

  private constructor(
    workers: Worker[],
    readonly info: EngineInfo,
    private readonly layout: OutputLayout,
    /** The output withBestClassOutput added (raw heads): what single-label NMS reads. */
    private readonly bestClassOutput?: string,
  ) {
    // A thread ending while the engine is disposed is expected, and must not fail the other sessions' runs.
    this.sessions = workers.map((w) => new SessionWorker(w, (err) => this.disposing || this.fail(err)));
  }

  static async load(modelPath: string, options: OnnxRuntimeEngineOptions): Promise<OnnxRuntimeEngine> {
    const threads = options.threads ?? availableParallelism();
    let edited: Uint8InputModel;
    const metadata = await readModelMetadata(modelPath).catch(() => undefined);
    const end2end = end2endFlag(metadata?.props.end2end);
    const layoutOf = (dims: (number | string)[]) =>
      detectOutputLayout(dims, { ...(end2end !== undefined && { end2end }), ...(metadata?.names.length && { numClasses: metadata.names.length }) }, modelPath);
    try {
      edited = withUint8HwcInput(await readFile(modelPath));
    } catch (err) {
      if (err instanceof ModelInputError) throw new FatalError('BAD_MODEL', `${modelPath} is not a YOLO detection model: ${err.message}`);
      throw new FatalError('BAD_MODEL', `cannot load model ${modelPath}: ${(err as Error).message}`, { cause: err });
    }
    // The output shape the file declares decides the layout before loading (a raw head gets the
    // best-class output); a file that declares too little is decided by ONNX Runtime's inferred shape.
    let layout: OutputLayout | undefined;
    try {
      layout = layoutOf(onnxOutputDims(edited.model));
    } catch {
      layout = undefined;
    }
    const bestClass = layout?.kind === 'raw' ? withBestClassOutput(edited.model) : undefined;
    const sessions = Math.max(1, Math.min(options.sessions ?? defaultCpuSessions(threads), threads));
    const workers = sessionThreads(threads, sessions).map((share) => new Worker(new URL('./onnxruntime-worker.mjs', import.meta.url), {
      // External weights are found beside the model file, as when ONNX Runtime loads it by path.
      workerData: { model: bestClass?.model ?? edited.model, options: cpuSessionOptions(share, dirname(modelPath)) },
    }));
    const terminate = () => Promise.all(workers.map((w) => w.terminate()));
    const readies = await Promise.all(
      workers.map((worker) =>
        new Promise<Ready>((resolve, reject) => {
          worker.once('message', (msg: { type: string; message?: string } & Ready) => {
            if (msg.type === 'ready') resolve(msg);
            else reject(new FatalError('BAD_MODEL', `cannot load model ${modelPath}: ${msg.message}`));
          });
          worker.once('error', (err) => reject(new FatalError('BAD_MODEL', `cannot load model ${modelPath}: ${err.message}`)));
        }),
      ),
    ).catch(async (err: unknown) => {
      await terminate();
      throw err;
    });
    const ready = readies[0]!;
    try {
      layout ??= layoutOf(ready.outputShape);
    } catch (err) {
      await terminate();
      throw err;
    }
    const [b, , h, w] = edited.dims;
    const fixed = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : undefined);
    const fixedH = fixed(h);
    const fixedW = fixed(w);
    const inputHeight = fixedH ?? options.imgsz?.[0] ?? 640;
    const inputWidth = fixedW ?? options.imgsz?.[1] ?? 640;
    if (options.imgsz && fixedH && (options.imgsz[0] !== fixedH || options.imgsz[1] !== fixedW)) {
      await terminate();
      throw new FatalError('USAGE', `--imgsz ${options.imgsz.join('x')} does not match the model's fixed input ${fixedH}x${fixedW}`);
    }
    const names = metadata?.names ?? [];
    const numClasses = layout.kind === 'raw' ? layout.numClasses : names.length || options.numClasses;
    return new OnnxRuntimeEngine(workers, {
      kind: 'onnxruntime-cpu',
      precision: 'fp32',
      inputWidth,
      inputHeight,
      maxBatch: fixed(b) ?? options.maxBatch ?? 8,
      parallelBatches: sessions,
      accepts: 'letterboxed',
      device: 'cpu',
      runtimeVersion: `onnxruntime ${ready.version}`,
      numClasses,
      ...(names.length && { classNames: names }),
      outputLayout: layout.kind,
    }, layout, bestClass?.output);
  }

  async infer(frames: readonly Frame[], params: DetectParams): Promise<FrameDetections[]> {
    const { inputWidth: w, inputHeight: h, numClasses } = this.info;
    const plane = w * h;
    const input = new Uint8Array(frames.length * 3 * plane);
    const letterboxes = frames.map((f, n) => {
      if (f.layout !== 'letterboxed' || f.width !== w || f.height !== h || f.pixels.length !== 3 * plane || !f.letterbox)
        throw new Error(`onnxruntime-cpu needs ${w}x${h} letterboxed frames`);
      input.set(f.pixels, n * 3 * plane);
      return f.letterbox;
    });
    const best = !params.multiLabel ? this.bestClassOutput : undefined;
    const { data, dims } = await this.run(input, [frames.length, h, w, 3], best);
    if (this.layout.kind === 'end2end') {
      const detections = dims[1]!;
      return letterboxes.map((lb, n) => decodeEndToEnd(data, n * detections * END2END_VALUES, detections, params, lb));
    }
    const anchors = dims[2]!;
    if (best) return letterboxes.map((lb, n) => postprocessBestClass(data, n * 6 * anchors, anchors, params, lb));
    const per = (4 + numClasses) * anchors;
    return letterboxes.map((lb, n) => postprocess(data, n * per, numClasses, anchors, params, lb));
  }

  /** Runs one batch on the least busy session; `output` names the output to fetch (default: the first). */
  private run(data: Uint8Array, dims: number[], output?: string): Promise<{ data: Float32Array; dims: number[] }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const session = this.sessions.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    return new Promise((resolve, reject) => {
      session.pending.set(id, { resolve, reject });
      session.worker.postMessage({ id, data, dims, output }, [data.buffer as ArrayBuffer]);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const s of this.sessions) {
      for (const p of s.pending.values()) p.reject(err);
      s.pending.clear();
    }
  }

  async dispose(): Promise<void> {
    this.failure ??= new Error('engine disposed');
    this.disposing = true;
    await Promise.all(
      this.sessions.map(async ({ worker, closed, exited }) => {
        worker.postMessage({ close: true });
        // Terminated once it has answered everything, or when a run does not come back in time (a hung runtime).
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([closed, exited, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)))]);
        clearTimeout(timer);
        await worker.terminate();
      }),
    );
    // Whatever a thread did not answer (it crashed, or hung and was terminated) is not coming.
    this.disposing = false;
    this.fail(this.failure);
  }
}
