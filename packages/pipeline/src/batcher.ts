import { EngineFault, ImageError, type DetectParams } from '@detq/core';
import type { Engine, Frame, FrameDetections, FrameOutcome } from '@detq/inference';

export interface BatcherOptions {
  /** Frames per engine call; capped by the engine's own max batch. */
  maxBatch: number;
  /** How long a partial batch may wait for more frames. */
  maxWaitMs: number;
  /** Engine calls allowed in flight at once (default: the engine's parallelBatches, at least 2, so it stays busy while the next batch forms). */
  maxInFlight?: number;
  /**
   * Deadline of one engine call. A call that misses it means a hung runtime or kernel: the batcher is
   * then broken for good (every frame, now and later, gets an EngineFault) so the worker can stop.
   */
  callTimeoutMs?: number;
}

interface Waiting {
  frame: Frame;
  resolve: (d: FrameDetections) => void;
  reject: (e: Error) => void;
}

export interface BatcherStats {
  batches: number;
  frames: number;
  /** Mean batch fill, 0..1. */
  fill: number;
}

/**
 * The one place frames meet the engine. Every caller (every image of every active job) submits single
 * frames; they leave in batches of up to maxBatch, or sooner after maxWaitMs. Frames only share a batch
 * when their post-processing params are equal, because an engine call applies one set of params.
 */
/** A frame's outcome: its detections, or the per-frame error the engine gave (a JPEG the device could not decode). */
function settle(w: { resolve: (d: FrameDetections) => void; reject: (e: Error) => void }, outcome: FrameOutcome): void {
  if (outcome instanceof Error) w.reject(outcome);
  else w.resolve(outcome);
}

export class Batcher {
  private readonly queues = new Map<string, { params: DetectParams; items: Waiting[]; since: number }>();
  private timer?: NodeJS.Timeout;
  private inFlight = 0;
  /** Frames per engine call at most. */
  readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly idle: (() => void)[] = [];
  private closed = false;
  private broken?: EngineFault;
  private counts = { batches: 0, frames: 0 };

  constructor(
    private readonly engine: Engine,
    private readonly options: BatcherOptions,
  ) {
    this.maxBatch = Math.max(1, Math.min(options.maxBatch, engine.info.maxBatch));
    this.maxInFlight = options.maxInFlight ?? Math.max(2, engine.info.parallelBatches ?? 2);
  }

  detect(frame: Frame, params: DetectParams): Promise<FrameDetections> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new EngineFault('batcher is closed'));
    const key = JSON.stringify(params);
    let q = this.queues.get(key);
    if (!q) {
      q = { params, items: [], since: Date.now() };
      this.queues.set(key, q);
    }
    if (q.items.length === 0) q.since = Date.now();
    return new Promise((resolve, reject) => {
      q.items.push({ frame, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight) {
      const next = this.pick();
      if (!next) break;
      void this.run(next.params, next.items.splice(0, this.maxBatch));
    }
    this.schedule();
  }

  // A full batch goes first; otherwise the oldest queue once it has waited maxWaitMs.
  private pick(): { params: DetectParams; items: Waiting[] } | undefined {
    let oldest: { params: DetectParams; items: Waiting[]; since: number } | undefined;
    for (const q of this.queues.values()) {
      if (q.items.length >= this.maxBatch) return q;
      if (q.items.length > 0 && (!oldest || q.since < oldest.since)) oldest = q;
    }
    if (oldest && Date.now() - oldest.since >= this.options.maxWaitMs) return oldest;
    return undefined;
  }

  private schedule(): void {
    if (this.timer || this.inFlight >= this.maxInFlight) return;
    let due = Infinity;
    for (const q of this.queues.values()) if (q.items.length > 0) due = Math.min(due, q.since + this.options.maxWaitMs);
    if (due === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(0, due - Date.now()));
  }

  private async run(params: DetectParams, items: Waiting[]): Promise<void> {
    this.inFlight++;
    this.counts.batches++;
    this.counts.frames += items.length;
    try {
      const out = await this.infer(
        items.map((w) => w.frame),
        params,
      );
      items.forEach((w, i) => settle(w, out[i]!));
    } catch (err) {
      await this.settleFailedBatch(params, items, err);
    } finally {
      this.inFlight--;
      this.pump();
      if (this.inFlight === 0 && this.pending() === 0) for (const f of this.idle.splice(0)) f();
    }
  }

  /**
   * A failed batch is re-run frame by frame: when some frames pass alone, the failing ones belong to
   * their images (INFERENCE_FAILED); when none does, the engine is at fault and every frame says so.
   */
  private async settleFailedBatch(params: DetectParams, items: Waiting[], err: unknown): Promise<void> {
    const fault = (e: unknown) =>
      e instanceof EngineFault ? e : new EngineFault(`engine failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    if (items.length === 1 || this.broken) {
      for (const w of items) w.reject(fault(err));
      return;
    }
    const solo = await Promise.all(
      items.map((w) =>
        this.infer([w.frame], params).then(
          (out) => ({ ok: true as const, dets: out[0]! }),
          (e: unknown) => ({ ok: false as const, err: e }),
        ),
      ),
    );
    const engineWorks = solo.some((r) => r.ok) && !this.broken;
    solo.forEach((r, i) => {
      const w = items[i]!;
      if (r.ok) settle(w, r.dets);
      else if (engineWorks) w.reject(new ImageError('INFERENCE_FAILED', `the engine failed on this image: ${(r.err as Error)?.message ?? String(r.err)}`, { cause: r.err }));
      else w.reject(fault(r.err));
    });
  }

  /** One engine call under the call deadline. */
  private infer(frames: Frame[], params: DetectParams): Promise<FrameOutcome[]> {
    if (this.broken) return Promise.reject(this.broken);
    const call = this.engine.infer(frames, params);
    const limit = this.options.callTimeoutMs;
    if (!limit) return call;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.broken ??= new EngineFault(`an engine call took longer than ${limit} ms: the engine is considered hung`);
        reject(this.broken);
      }, limit);
    });
    return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
  }

  private pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.items.length;
    return n;
  }

  stats(): BatcherStats {
    const { batches, frames } = this.counts;
    return { batches, frames, fill: batches ? frames / (batches * this.maxBatch) : 0 };
  }

  /** Resolves once every submitted frame has been answered. */
  drain(): Promise<void> {
    if (this.inFlight === 0 && this.pending() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops accepting frames and waits for the ones already submitted. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
    if (this.timer) clearTimeout(this.timer);
  }
}
