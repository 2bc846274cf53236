import type { DetectParams } from '@detq/core';
import type { Engine, Frame, FrameDetections } from '@detq/inference';

export interface BatcherOptions {
  /** Frames per engine call; capped by the engine's own max batch. */
  maxBatch: number;
  /** How long a partial batch may wait for more frames. */
  maxWaitMs: number;
  /** Engine calls allowed in flight at once (default: the engine's parallelBatches, at least 2, so it stays busy while the next batch forms). */
  maxInFlight?: number;
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
export class Batcher {
  private readonly queues = new Map<string, { params: DetectParams; items: Waiting[]; since: number }>();
  private timer?: NodeJS.Timeout;
  private inFlight = 0;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly idle: (() => void)[] = [];
  private closed = false;
  private counts = { batches: 0, frames: 0 };

  constructor(
    private readonly engine: Engine,
    private readonly options: BatcherOptions,
  ) {
    this.maxBatch = Math.max(1, Math.min(options.maxBatch, engine.info.maxBatch));
    this.maxInFlight = options.maxInFlight ?? Math.max(2, engine.info.parallelBatches ?? 2);
  }

  detect(frame: Frame, params: DetectParams): Promise<FrameDetections> {
    if (this.closed) return Promise.reject(new Error('batcher is closed'));
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
      const out = await this.engine.infer(
        items.map((w) => w.frame),
        params,
      );
      items.forEach((w, i) => {
        const outcome = out[i]!;
        if (outcome instanceof Error) w.reject(outcome);
        else w.resolve(outcome);
      });
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      for (const w of items) w.reject(e);
    } finally {
      this.inFlight--;
      this.pump();
      if (this.inFlight === 0 && this.pending() === 0) for (const f of this.idle.splice(0)) f();
    }
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
