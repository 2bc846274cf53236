import { UnrecoverableError, type Job } from 'bullmq';
import { DetqError, FatalError, ImageError, type ImageRecord } from '@detq/core';
import { recordLine } from '@detq/formats';
import { errorRecord, labelStream, type LabelSource } from '@detq/pipeline';
import type { ObjectStore } from '@detq/storage';
import type { EnginePool } from './engine-pool';
import type { FairShare } from './fair-share';
import type { IncrementalIndex } from './incremental-index';
import type { ChunkJobData, ChunkResult } from './job-data';
import type { ProgressReporter } from './progress-reporter';
import { TransientReadTracker } from './transient-read-tracker';

export interface ChunkProcessorDeps {
  store: ObjectStore;
  pool: EnginePool;
  index: IncrementalIndex;
  progress: ProgressReporter;
  fair: FairShare;
}

async function* sources(images: ChunkJobData['images']): AsyncGenerator<LabelSource> {
  for (const { key, uri, size, refused } of images)
    yield { key, uri, ...(size !== undefined && { size }), ...(refused && { refused: new ImageError(refused.code, refused.message) }) };
}

/**
 * Labels one chunk through the process-wide shared batcher and writes its records as ONE JSONL object
 * at the chunk's deterministic key, so a retried or re-run chunk overwrites, never duplicates. A bad
 * image becomes that image's error record; only storage trouble or a bad model fails the chunk. A cancel
 * seen mid-chunk keeps what was labelled: the rest of the chunk's images are written as CANCELLED.
 */
export class ChunkProcessor {
  constructor(private readonly deps: ChunkProcessorDeps) {}

  async process(job: Job<ChunkJobData>): Promise<ChunkResult> {
    let final = true;
    try {
      return await this.label(job);
    } catch (err) {
      final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      throw err;
    } finally {
      // The chunk leaves its tenant's backlog once it will not run again.
      if (final) await this.deps.fair.chunkEnded(job.data.principal ?? '').catch(() => undefined);
    }
  }

  private async label(job: Job<ChunkJobData>): Promise<ChunkResult> {
    const d = job.data;
    const { pool, progress } = this.deps;
    if ((await progress.status(d.setId)) === 'cancelled') throw new UnrecoverableError('job cancelled');
    const rt = await pool.acquire(d.model).catch((err: unknown) => {
      // A model that cannot be loaded will not load on a retry either.
      throw err instanceof FatalError ? new UnrecoverableError(err.message) : err;
    });
    try {
      const input = new TransientReadTracker(this.deps.store);
      const { imgsz: _imgsz, ...params } = d.params;
      const records: ImageRecord[] = [];
      let failed = 0;
      let detections = 0;
      const stream = labelStream(sources(d.images), {
        store: input,
        preparer: rt.preparer,
        batcher: rt.batcher,
        model: rt.model,
        names: rt.names,
        params,
        window: 2 * Math.min(rt.info.maxBatch, 16),
        ...(d.maxObjectBytes && { maxObjectBytes: d.maxObjectBytes }),
      });
      for await (const { record } of stream) {
        records.push(record);
        if (record.error) failed++;
        detections += record.detections.length;
        if (progress.update(d.setId, d.index, records.length, failed) === 'cancelled') break;
      }
      const done = records.length;
      for (const { key } of d.images.slice(done)) records.push(errorRecord(key, new DetqError('CANCELLED', 'job cancelled'), rt.model, params));
      const attemptsLeft = (job.opts.attempts ?? 1) - job.attemptsMade - 1;
      if (input.transient && attemptsLeft > 0)
        throw new Error(`transient storage error, chunk will be retried: ${input.transient.message}`);
      await this.deps.store.put(d.resultUri, records.map(recordLine).join(''), 'application/x-ndjson');
      if (d.indexFingerprint) {
        const labelled = d.images.flatMap((img, i) => (records[i]?.error ? [] : [{ ...img, result: d.resultUri, line: i + 1 }]));
        await this.deps.index.record(d.indexFingerprint, labelled);
      }
      progress.update(d.setId, d.index, done, failed);
      const { kind, runtimeVersion, device, precision } = rt.info;
      return { images: done, failed, detections, engine: { kind, runtimeVersion, device, precision } };
    } catch (err) {
      progress.drop(d.setId, d.index);
      throw err;
    } finally {
      pool.release(d.model);
    }
  }
}
