import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
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
 * sessions of 4 threads keep the model copies and their memory few.
 */
export function defaultCpuSessions(threads: number): number {
  return threads <= 4 ? threads : Math.ceil(threads / 4);
}

/** One session on its worker thread, with the calls it has been given and not answered yet. */
class SessionWorker {
  readonly pending = new Map<number, Pending>();

  constructor(
    readonly worker: Worker,
    onFailure: (err: Error) => void,
  ) {
    worker.on('message', (msg: { id: number; data?: Float32Array; dims?: number[]; error?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error !== undefined || !msg.data || !msg.dims) p.reject(new Error(`onnxruntime: ${msg.error}`));
      else p.resolve({ data: msg.data, dims: msg.dims });
    });
    worker.on('error', onFailure);
    worker.on('exit', (code) => onFailure(new Error(`onnxruntime worker exited with code ${code}`)));
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

  private constructor(
    workers: Worker[],
    readonly info: EngineInfo,
    private readonly layout: OutputLayout,
    /** The output withBestClassOutput added (raw heads): what single-label NMS reads. */
    private readonly bestClassOutput?: string,
  ) {
    this.sessions = workers.map((w) => new SessionWorker(w, (err) => this.fail(err)));
  }

  static async load(modelPath: string, options: OnnxRuntimeEngineOptions): Promise<OnnxRuntimeEngine> {
    const threads = options.threads ?? availableParallelism();
    let edited: Uint8InputModel;
    let layout: OutputLayout;
    let bestClass: { model: Buffer; output: string } | undefined;
    const metadata = await readModelMetadata(modelPath).catch(() => undefined);
    try {
      edited = withUint8HwcInput(await readFile(modelPath));
      const end2end = end2endFlag(metadata?.props.end2end);
      layout = detectOutputLayout(onnxOutputDims(edited.model), { ...(end2end !== undefined && { end2end }), ...(metadata?.names.length && { numClasses: metadata.names.length }) }, modelPath);
      if (layout.kind === 'raw') bestClass = withBestClassOutput(edited.model);
    } catch (err) {
      if (err instanceof ModelInputError) throw new FatalError('BAD_MODEL', `${modelPath} is not a YOLO detection model: ${err.message}`);
      if (err instanceof FatalError) throw err;
      throw new FatalError('BAD_MODEL', `cannot load model ${modelPath}: ${(err as Error).message}`, { cause: err });
    }
    const sessions = Math.max(1, Math.min(options.sessions ?? defaultCpuSessions(threads), threads));
    const workers = Array.from({ length: sessions }, () => new Worker(new URL('./onnxruntime-worker.mjs', import.meta.url), {
      workerData: { model: bestClass?.model ?? edited.model, threads: Math.floor(threads / sessions) },
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
    await Promise.all(
      this.sessions.map((s) => {
        s.worker.removeAllListeners('exit');
        return s.worker.terminate();
      }),
    );
  }
}
