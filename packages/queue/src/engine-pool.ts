import type { ModelInfo } from '@detq/core';
import type { Engine, EngineChoice, EngineInfo } from '@detq/inference';
import { Batcher, FramePreparer, openEngine, type OpenEngineOptions } from '@detq/pipeline';
import type { ObjectStore } from '@detq/storage';

/** What a chunk needs to label images with one model: the shared batcher in front of its engine. */
export interface LabelRuntime {
  batcher: Batcher;
  preparer: FramePreparer;
  model: ModelInfo;
  names: string[];
  info: EngineInfo;
  engine: Engine;
}

export interface ModelRef {
  uri?: string;
  sha256?: string;
  /** Square input side; default: the model's own. */
  imgsz?: number;
}

export interface EnginePoolOptions {
  store: ObjectStore;
  maxBatch: number;
  maxWaitMs: number;
  threads?: number;
  /** Which engine loads the models (`auto` prefers the GPU engines). */
  engine?: EngineChoice;
  /** FP16 on the GPU engines. */
  half?: boolean;
  /** The model of jobs that name none (default: DETQ_MODEL); a TensorRT worker's plan from its engine cache. */
  defaultModel?: string;
  /** CUDA device of the GPU engines (`detq worker --device`). */
  device?: number;
  /** Engines kept loaded at once; idle ones beyond this are disposed, least recently used first. */
  maxEngines?: number;
  /** Deadline of one engine call (a batch); see BatcherOptions.callTimeoutMs. */
  batchTimeoutMs?: number;
  /** Wraps every engine opened (instrumentation; fault injection in the fault tests). */
  decorate?: (engine: Engine) => Engine;
}

interface Entry {
  runtime: Promise<LabelRuntime>;
  users: number;
  lastUsed: number;
}

/**
 * One engine and ONE batcher per (model, imgsz) per worker process, shared by every active chunk, so
 * frames of different jobs fill the same batches. Most deployments only ever load the default model.
 */
export class EnginePool {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: EnginePoolOptions) {}

  /** Borrows the runtime for a model; call release() with the same ref when the chunk is done. */
  async acquire(ref: ModelRef = {}): Promise<LabelRuntime> {
    const key = EnginePool.key(ref);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { runtime: this.open(ref), users: 0, lastUsed: Date.now() };
      this.entries.set(key, entry);
      entry.runtime.catch(() => this.entries.delete(key));
    }
    entry.users++;
    entry.lastUsed = Date.now();
    try {
      return await entry.runtime;
    } catch (err) {
      entry.users--;
      throw err;
    } finally {
      await this.evictIdle();
    }
  }

  release(ref: ModelRef = {}): void {
    const entry = this.entries.get(EnginePool.key(ref));
    if (entry) entry.users--;
  }

  /** Batch statistics summed over every loaded engine (for metrics and the bench). */
  async stats(): Promise<{ batches: number; frames: number; fill: number }> {
    let batches = 0;
    let frames = 0;
    let capacity = 0;
    for (const e of this.entries.values()) {
      const rt = await e.runtime.catch(() => undefined);
      if (!rt) continue;
      const s = rt.batcher.stats();
      batches += s.batches;
      frames += s.frames;
      capacity += s.batches * Math.min(this.options.maxBatch, rt.info.maxBatch);
    }
    return { batches, frames, fill: capacity ? frames / capacity : 0 };
  }

  /** Lets in-flight frames finish, then disposes every engine. */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.runtime.then(closeRuntime, () => undefined)));
  }

  private static key(ref: ModelRef): string {
    return `${ref.uri ?? ''}|${ref.sha256 ?? ''}|${ref.imgsz ?? ''}`;
  }

  private async open(ref: ModelRef): Promise<LabelRuntime> {
    const opts: OpenEngineOptions = { store: this.options.store, maxBatch: this.options.maxBatch };
    const uri = ref.uri ?? this.options.defaultModel;
    if (uri) opts.model = uri;
    if (ref.sha256) opts.sha256 = ref.sha256;
    if (ref.imgsz) opts.imgsz = [ref.imgsz, ref.imgsz];
    if (this.options.threads) opts.threads = this.options.threads;
    if (this.options.engine) opts.engine = this.options.engine;
    if (this.options.half) opts.half = this.options.half;
    if (this.options.device !== undefined) opts.device = this.options.device;
    // A fallback of `auto` is worth one line in the worker's log.
    opts.notice = (line) => process.stderr.write(`detq worker: ${line}\n`);
    const opened = await openEngine(opts);
    const { model, names } = opened;
    const engine = this.options.decorate ? this.options.decorate(opened.engine) : opened.engine;
    return {
      batcher: new Batcher(engine, {
        maxBatch: this.options.maxBatch,
        maxWaitMs: this.options.maxWaitMs,
        ...(this.options.batchTimeoutMs && { callTimeoutMs: this.options.batchTimeoutMs }),
      }),
      preparer: new FramePreparer(engine.info),
      model,
      names,
      info: engine.info,
      engine,
    };
  }

  // The idle set is re-read after every await: a chunk may have borrowed an entry meanwhile, and
  // closing its batcher under it would fail its images.
  private async evictIdle(): Promise<void> {
    const max = this.options.maxEngines ?? 2;
    while (this.entries.size > max) {
      const victim = [...this.entries].filter(([, e]) => e.users === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0];
      if (!victim) return;
      const [key, entry] = victim;
      this.entries.delete(key);
      await entry.runtime.then(closeRuntime, () => undefined);
    }
  }
}

async function closeRuntime(rt: LabelRuntime): Promise<void> {
  await rt.batcher.close();
  // The batcher has answered every frame; the engine can go.
  await rt.engine.dispose();
}
