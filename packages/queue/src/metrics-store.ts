import { jobStatusSchema, type JobStatus, type WorkerStats } from '@detq/core';
import type { JobStore } from './job-store';
import type { RedisClient } from './config';

/**
 * The few numbers /metrics needs that live in workers: each worker reports its batcher counters every
 * few seconds (O(workers) commands, not O(images)), finalisers add per-job error counts by code.
 */
export class MetricsStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly jobs: JobStore,
  ) {}

  async reportWorker(workerId: string, stats: WorkerStats): Promise<void> {
    await this.redis.hset(this.jobs.key('workers'), workerId, JSON.stringify(stats));
  }

  /** Workers that reported within `maxAgeMs` (older entries are dropped). */
  async workers(maxAgeMs = 60_000, now = Date.now()): Promise<Record<string, WorkerStats>> {
    const all = await this.redis.hgetall(this.jobs.key('workers'));
    const live: Record<string, WorkerStats> = {};
    const stale: string[] = [];
    for (const [id, json] of Object.entries(all)) {
      const s = JSON.parse(json) as WorkerStats;
      if (now - s.at <= maxAgeMs) live[id] = s;
      else stale.push(id);
    }
    if (stale.length) await this.redis.hdel(this.jobs.key('workers'), ...stale);
    return live;
  }

  async recordErrors(errorsByCode: Record<string, number>): Promise<void> {
    const entries = Object.entries(errorsByCode);
    if (entries.length === 0) return;
    const p = this.redis.pipeline();
    for (const [code, n] of entries) p.hincrby(this.jobs.key('errors'), code, n);
    await p.exec();
  }

  async errors(): Promise<Record<string, number>> {
    const all = await this.redis.hgetall(this.jobs.key('errors'));
    return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Number(v)]));
  }

  /** Jobs by status, every job ever created under the prefix (counters kept on each transition). */
  async statusCounts(): Promise<Record<JobStatus, number>> {
    const stored = await this.jobs.statusCounts();
    return Object.fromEntries(jobStatusSchema.options.map((s) => [s, stored[s] ?? 0])) as Record<JobStatus, number>;
  }

  /** Images of ended jobs, by outcome (a Prometheus counter: rate() gives images per second). */
  async recordImages(labelled: number, failed: number): Promise<void> {
    await this.redis.hincrby(this.jobs.key('images'), 'labelled', labelled);
    if (failed) await this.redis.hincrby(this.jobs.key('images'), 'failed', failed);
  }

  async images(): Promise<{ labelled: number; failed: number }> {
    const h = await this.redis.hgetall(this.jobs.key('images'));
    return { labelled: Number(h.labelled ?? 0), failed: Number(h.failed ?? 0) };
  }
}
