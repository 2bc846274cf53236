import type { JobStatus } from '@detq/core';
import type { JobStore } from './job-store';

/**
 * A worker's progress writes, at a bounded rate: chunks update counts in memory; every `intervalMs` the
 * dirty counts of each job go to Redis in ONE command per job (however many of its chunks this worker
 * runs), which also brings back the job's status so running chunks notice a cancel. A chunk's last counts
 * go out with the next write too: the finaliser writes every chunk's final counts before the job ends.
 */
export class ProgressReporter {
  private readonly dirty = new Map<string, Map<number, [number, number]>>();
  private readonly statuses = new Map<string, { status: JobStatus; at: number }>();
  private readonly timer: NodeJS.Timeout;
  private flushing = Promise.resolve();

  constructor(
    private readonly jobs: JobStore,
    readonly intervalMs: number,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Notes a chunk's counts; returns the job's status as of the last write (to stop on a cancel). */
  update(setId: string, chunk: number, done: number, failed: number): JobStatus | undefined {
    let chunks = this.dirty.get(setId);
    if (!chunks) this.dirty.set(setId, (chunks = new Map()));
    chunks.set(chunk, [done, failed]);
    return this.statuses.get(setId)?.status;
  }

  /**
   * The job's status: from this worker's last progress write when that is recent (chunks of one job
   * usually follow each other on a worker), else read now.
   */
  async status(setId: string): Promise<JobStatus | undefined> {
    const known = this.statuses.get(setId);
    if (known && Date.now() - known.at <= this.intervalMs) return known.status;
    return this.jobs.status(setId);
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
        if (status) this.statuses.set(setId, { status, at: Date.now() });
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
  }
}
