import { UnrecoverableError, type Job } from 'bullmq';
import { EngineFault, FatalError, ImageError, type ImageRecord } from '@detq/core';
import { recordLine } from '@detq/formats';
import { engineWindow, InFlightBytes, labelStream, type LabelSource } from '@detq/pipeline';
import type { ObjectStore } from '@detq/storage';
import type { EnginePool } from './engine-pool';
import type { IncrementalIndex } from './incremental-index';
import { CANCELLED_REASON, type ChunkJobData, type ChunkResult } from './job-data';
import type { ProgressReporter } from './progress-reporter';
import { TransientReadTracker } from './transient-read-tracker';

export interface ChunkProcessorDeps {
  store: ObjectStore;
  pool: EnginePool;
  index: IncrementalIndex;
  progress: ProgressReporter;
  /** Longest a chunk may run; past it the chunk is aborted and retried. */
  chunkTimeoutMs: number;
  /** Told after every chunk whether the engine failed it, so a worker whose engine keeps failing can stop. */
  engineHealth?: (fault: EngineFault | undefined) => void;
}

/** Why a chunk was stopped from outside; the processor turns each into the right BullMQ outcome. */
export const ABORT = {
  cancelled: CANCELLED_REASON,
  lockLost: 'lock lost',
  shutdown: 'worker shutting down',
} as const;

async function* sources(images: ChunkJobData['images']): AsyncGenerator<LabelSource> {
  for (const { key, uri, size, refused } of images)
    yield { key, uri, ...(size !== undefined && { size }), ...(refused && { refused: new ImageError(refused.code, refused.message) }) };
}

/**
 * Labels one chunk through the process-wide shared batcher and writes its records as ONE JSONL object
 * at the chunk's deterministic key, so a retried or re-run chunk overwrites, never duplicates. A bad
 * image becomes that image's error record; storage trouble, an engine fault, a deadline, a cancel or a
 * lost lock end the chunk (retried, except a cancel).
 */
export class ChunkProcessor {
  /** One byte budget for all of this worker's chunks in flight, so memory does not grow with the concurrency. */
  private readonly inFlightBytes = new InFlightBytes();

  constructor(private readonly deps: ChunkProcessorDeps) {}

  /** `signal` is BullMQ's: aborted on a lost lock or on shutdown (see createWorker). */
  async process(job: Job<ChunkJobData>, signal?: AbortSignal): Promise<ChunkResult> {
    const d = job.data;
    const { pool, progress } = this.deps;
    if ((await progress.status(d.setId)) === 'cancelled') throw new UnrecoverableError(ABORT.cancelled);
    const rt = await pool.acquire(d.model).catch((err: unknown) => {
      // A model that cannot be loaded will not load on a retry either.
      throw err instanceof FatalError ? new UnrecoverableError(err.message) : err;
    });
    const cancel = new AbortController();
    const deadline = AbortSignal.timeout(this.deps.chunkTimeoutMs);
    const stop = AbortSignal.any([cancel.signal, deadline, ...(signal ? [signal] : [])]);
    const records: ImageRecord[] = [];
    let failed = 0;
    // Progress writes double as cancel checks: a chunk stuck in a read or an outage still hears a cancel.
    const watch = setInterval(() => {
      if (progress.update(d.setId, d.index, records.length, failed) === 'cancelled') cancel.abort(ABORT.cancelled);
    }, progress.intervalMs);
    try {
      const input = new TransientReadTracker(this.deps.store);
      const { imgsz: _imgsz, ...params } = d.params;
      let detections = 0;
      const stream = labelStream(sources(d.images), {
        store: input,
        preparer: rt.preparer,
        batcher: rt.batcher,
        model: rt.model,
        names: rt.names,
        params,
        // A chunk alone can fill every batch the engine runs at once; the shared byte budget bounds them all.
        window: engineWindow(rt.batcher.maxBatch, rt.info),
        inFlightBytes: this.inFlightBytes,
        signal: stop,
        ...(d.maxObjectBytes && { maxObjectBytes: d.maxObjectBytes }),
      });
      for await (const { record } of stream) {
        records.push(record);
        if (record.error) failed++;
        detections += record.detections.length;
        if (progress.update(d.setId, d.index, records.length, failed) === 'cancelled') cancel.abort(ABORT.cancelled);
        stop.throwIfAborted();
      }
      this.deps.engineHealth?.(undefined);
      const attemptsLeft = (job.opts.attempts ?? 1) - job.attemptsMade - 1;
      if (input.transient && attemptsLeft > 0)
        throw new Error(`transient storage error, chunk will be retried: ${input.transient.message}`);
      // The result write also stops on a shutdown or lost lock instead of waiting out an S3 outage.
      await this.deps.store.put(d.resultUri, records.map(recordLine).join(''), 'application/x-ndjson', { signal: stop });
      if (d.indexFingerprint) {
        const labelled = d.images.flatMap((img, i) => (records[i]?.error ? [] : [{ ...img, result: d.resultUri, line: i + 1 }]));
        await this.deps.index.record(d.indexFingerprint, labelled);
      }
      progress.update(d.setId, d.index, records.length, failed);
      const { kind, runtimeVersion, device, precision } = rt.info;
      return { images: records.length, failed, detections, engine: { kind, runtimeVersion, device, precision } };
    } catch (err) {
      progress.drop(d.setId, d.index);
      throw this.outcome(err, stop, deadline);
    } finally {
      clearInterval(watch);
      pool.release(d.model);
    }
  }

  /** What BullMQ is told: a cancel is final; a fault, deadline, lost lock or shutdown is retried. */
  private outcome(err: unknown, stop: AbortSignal, deadline: AbortSignal): unknown {
    if (err instanceof EngineFault) {
      this.deps.engineHealth?.(err);
      return new Error(`engine fault, chunk will be retried elsewhere: ${err.message}`, { cause: err });
    }
    if (!stop.aborted) return err;
    if (stop.reason === ABORT.cancelled) return new UnrecoverableError(ABORT.cancelled);
    if (deadline.aborted) return new Error(`chunk deadline of ${this.deps.chunkTimeoutMs} ms exceeded, chunk will be retried`);
    return new Error(`chunk stopped (${String(stop.reason)}), it will be retried`);
  }
}
