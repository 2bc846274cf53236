import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FatalError, type DetectParams } from '@detq/core';
import type { Engine, EngineInfo, Frame, FrameDetections } from './engine';
import { readOnnxModelMetadata as readModelMetadata } from './onnx-metadata';
import { detectOutputLayout, END2END_VALUES, end2endFlag, type OutputLayout } from './output-layout';
import { decodeEndToEnd, postprocess } from './yolo-postprocess';

export interface OnnxRuntimeEngineOptions {
  /** Intra-op threads; default: every core. */
  threads?: number;
  /** Largest batch per run (a static-batch model caps it to its own batch). */
  maxBatch?: number;
  /** Input size for a model with dynamic height/width. */
  imgsz?: [number, number];
  numClasses: number;
}

interface Ready {
  inputShape: (number | string)[];
  inputType: string;
  outputShape: (number | string)[];
  version: string;
}

interface Pending {
  resolve: (v: { data: Float32Array; dims: number[] }) => void;
  reject: (e: Error) => void;
}

/** The embedded CPU engine: ONNX Runtime on its own worker thread, letterboxed uint8 frames in. */
export class OnnxRuntimeEngine implements Engine {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private failure?: Error;

  private constructor(
    private readonly worker: Worker,
    readonly info: EngineInfo,
    private readonly layout: OutputLayout,
  ) {
    worker.on('message', (msg: { id: number; data?: Float32Array; dims?: number[]; error?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error !== undefined || !msg.data || !msg.dims) p.reject(new Error(`onnxruntime: ${msg.error}`));
      else p.resolve({ data: msg.data, dims: msg.dims });
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`onnxruntime worker exited with code ${code}`)));
  }

  static async load(modelPath: string, options: OnnxRuntimeEngineOptions): Promise<OnnxRuntimeEngine> {
    const threads = options.threads ?? availableParallelism();
    const worker = new Worker(new URL('./onnxruntime-worker.mjs', import.meta.url), {
      workerData: { modelPath, threads },
    });
    const ready = await new Promise<Ready>((resolve, reject) => {
      worker.once('message', (msg: { type: string; message?: string } & Ready) => {
        if (msg.type === 'ready') resolve(msg);
        else reject(new FatalError('BAD_MODEL', `cannot load model ${modelPath}: ${msg.message}`));
      });
      worker.once('error', (err) => reject(new FatalError('BAD_MODEL', `cannot load model ${modelPath}: ${err.message}`)));
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });

    const [b, c, h, w] = ready.inputShape;
    const problem =
      ready.inputShape.length !== 4 || c !== 3
        ? `input shape [${ready.inputShape.join(',')}] is not [batch,3,height,width]`
        : ready.inputType !== 'float32'
          ? `input type ${ready.inputType} is not float32`
          : undefined;
    if (problem) {
      await worker.terminate();
      throw new FatalError('BAD_MODEL', `${modelPath} is not a YOLO detection model: ${problem}`);
    }
    const metadata = await readModelMetadata(modelPath).catch(() => undefined);
    let layout: OutputLayout;
    try {
      const end2end = end2endFlag(metadata?.props.end2end);
      layout = detectOutputLayout(ready.outputShape, { ...(end2end !== undefined && { end2end }), ...(metadata?.names.length && { numClasses: metadata.names.length }) }, modelPath);
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    const fixed = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : undefined);
    const fixedH = fixed(h);
    const fixedW = fixed(w);
    const inputHeight = fixedH ?? options.imgsz?.[0] ?? 640;
    const inputWidth = fixedW ?? options.imgsz?.[1] ?? 640;
    if (options.imgsz && fixedH && (options.imgsz[0] !== fixedH || options.imgsz[1] !== fixedW)) {
      await worker.terminate();
      throw new FatalError('USAGE', `--imgsz ${options.imgsz.join('x')} does not match the model's fixed input ${fixedH}x${fixedW}`);
    }
    const names = metadata?.names ?? [];
    const numClasses = layout.kind === 'raw' ? layout.numClasses : names.length || options.numClasses;
    return new OnnxRuntimeEngine(worker, {
      kind: 'onnxruntime-cpu',
      precision: 'fp32',
      inputWidth,
      inputHeight,
      maxBatch: fixed(b) ?? options.maxBatch ?? 8,
      accepts: 'letterboxed',
      device: 'cpu',
      runtimeVersion: `onnxruntime ${ready.version}`,
      numClasses,
      ...(names.length && { classNames: names }),
      outputLayout: layout.kind,
    }, layout);
  }

  async infer(frames: readonly Frame[], params: DetectParams): Promise<FrameDetections[]> {
    const { inputWidth: w, inputHeight: h, numClasses } = this.info;
    const plane = w * h;
    const input = new Float32Array(frames.length * 3 * plane);
    const letterboxes = frames.map((f, n) => {
      if (f.layout !== 'letterboxed' || f.width !== w || f.height !== h || !f.letterbox)
        throw new Error(`onnxruntime-cpu needs ${w}x${h} letterboxed frames`);
      // HWC uint8 -> CHW float32 in [0, 1].
      const px = f.pixels;
      const base = n * 3 * plane;
      for (let i = 0, p = 0; i < plane; i++, p += 3) {
        input[base + i] = px[p]! / 255;
        input[base + plane + i] = px[p + 1]! / 255;
        input[base + 2 * plane + i] = px[p + 2]! / 255;
      }
      return f.letterbox;
    });
    const { data, dims } = await this.run(input, [frames.length, 3, h, w]);
    if (this.layout.kind === 'end2end') {
      const detections = dims[1]!;
      return letterboxes.map((lb, n) => decodeEndToEnd(data, n * detections * END2END_VALUES, detections, params, lb));
    }
    const anchors = dims[2]!;
    const per = (4 + numClasses) * anchors;
    return letterboxes.map((lb, n) => postprocess(data, n * per, numClasses, anchors, params, lb));
  }

  private run(data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, data, dims }, [data.buffer as ArrayBuffer]);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  async dispose(): Promise<void> {
    this.failure ??= new Error('engine disposed');
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
