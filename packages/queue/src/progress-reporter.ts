import type { JobStatus } from '@detq/core';
import type { JobStore } from './job-store';

/**
 * A worker's progress writes, at a bounded rate: chunks update counts in memory; every `intervalMs` the
 * dirty counts of each job go to Redis in ONE command per job (however many of its chunks this worker
 * runs), which also brings back the job's status so running chunks notice a cancel.
 */
export class ProgressReporter {
  private readonly dirty = new Map<string, Map<number, [number, number]>>();
  private readonly statuses = new Map<string, JobStatus>();
  private readonly timer: NodeJS.Timeout;
  private flushing = Promise.resolve();

  constructor(
    private readonly jobs: JobStore,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Notes a chunk's counts; returns the job's status as of the last write (to stop on a cancel). */
  update(setId: string, chunk: number, done: number, failed: number): JobStatus | undefined {
    let chunks = this.dirty.get(setId);
    if (!chunks) this.dirty.set(setId, (chunks = new Map()));
    chunks.set(chunk, [done, failed]);
    return this.statuses.get(setId);
  }

  /** A chunk's final counts, written now (the chunk is about to complete). */
  async finish(setId: string, chunk: number, done: number, failed: number): Promise<void> {
    this.dirty.get(setId)?.delete(chunk);
    await this.jobs.reportChunks(setId, [[chunk, done, failed]]);
  }

  /** Forgets a chunk that ended without finishing (failed or cancelled). */
  drop(setId: string, chunk: number): void {
    this.dirty.get(setId)?.delete(chunk);
  }

  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const batches = [...this.dirty].filter(([, chunks]) => chunks.size > 0);
      this.dirty.clear();
      for (const [setId, chunks] of batches) {
        const status = await this.jobs
          .reportChunks(setId, [...chunks].map(([c, [d, f]]) => [c, d, f]))
          .catch(() => undefined); // a missed progress write is repaired by the next one
        if (status) this.statuses.set(setId, status);
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
  }
}
