import { TERMINAL_STATUSES, type JobSpec, type JobStatus } from '@detq/core';
import type { DetqQueues } from './detq-queues';
import { JobStore, type JobState } from './job-store';
import { outputFor } from './set-processor';

/** What GET /v1/jobs/:id, `detq status` and `detq watch` show. */
export interface JobView {
  id: string;
  status: JobStatus;
  counts: { total: number; done: number; failed: number };
  /** 0..1; null while the total is still being planned. */
  progress: number | null;
  imagesPerSecond: number;
  /** Seconds left at the current rate; null when unknown. */
  eta: number | null;
  output: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
  /** A note, e.g. that an incremental run found nothing new and left the outputs unchanged. */
  message?: string;
  scheduleId?: string;
  metadata?: JobSpec['metadata'];
}

export interface EnqueueResult {
  id: string;
  status: JobStatus;
  /** True when an idempotency key matched a job that already existed. */
  existing: boolean;
}

export const SET_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 5000 },
  removeOnComplete: { age: 7 * 86400 },
  removeOnFail: { age: 7 * 86400 },
} as const;

/** Producer side of the job model: enqueue, look up, list, cancel. Used by the API and the CLI. */
export class JobClient {
  constructor(private readonly queues: DetqQueues) {}

  /**
   * `scope` namespaces idempotency keys (the API passes the token name). Throws OutputBusyError when a
   * live job already writes to the spec's output prefix.
   */
  async enqueue(spec: JobSpec, scope = ''): Promise<EnqueueResult> {
    const { jobs, sets } = this.queues;
    const id = spec.idempotencyKey ? JobStore.idFor(`${scope}\n${spec.idempotencyKey}`) : JobStore.newId();
    if (!(await jobs.create(id, { spec, output: outputFor(spec) }))) {
      return { id, status: (await jobs.status(id)) ?? 'queued', existing: true };
    }
    const kept = { age: jobs.ttlSeconds };
    try {
      await sets.add('set', { spec }, { ...SET_JOB_OPTIONS, removeOnComplete: kept, removeOnFail: kept, jobId: id, ...(spec.priority && { priority: spec.priority }) });
    } catch (err) {
      await jobs.remove(id).catch(() => undefined);
      throw err;
    }
    return { id, status: 'queued', existing: false };
  }

  async view(id: string, now = Date.now()): Promise<JobView | undefined> {
    const state = await this.queues.jobs.get(id);
    return state && JobClient.toView(state, now);
  }

  async list(options: { status?: JobStatus; limit: number; cursor?: number }): Promise<{ jobs: JobView[]; next?: number }> {
    const now = Date.now();
    const { jobs, next } = await this.queues.jobs.list(options);
    return { jobs: jobs.map((j) => JobClient.toView(j, now)), ...(next !== undefined && { next }) };
  }

  /** 'cancelled', or why not. */
  async cancel(id: string): Promise<'cancelled' | 'not_found' | 'already_ended'> {
    const status = await this.queues.jobs.status(id);
    if (!status) return 'not_found';
    if (TERMINAL_STATUSES.includes(status)) return 'already_ended';
    return (await this.queues.jobs.cancel(id)) ? 'cancelled' : 'already_ended';
  }

  static toView(s: JobState, now: number): JobView {
    const processed = s.done;
    const end = s.finishedAt ?? now;
    const seconds = s.startedAt ? (end - s.startedAt) / 1000 : 0;
    // img/s is images labelled (error records excepted) over the job's wall time; the ETA uses all
    // processed images, errors included, since those take time too.
    const labelledRate = seconds > 0 ? (s.done - s.failed) / seconds : 0;
    const rate = seconds > 0 ? processed / seconds : 0;
    const left = s.total - processed;
    const ended = TERMINAL_STATUSES.includes(s.status);
    return {
      id: s.id,
      status: s.status,
      counts: { total: s.total, done: s.done, failed: s.failed },
      progress: s.planned ? (s.total ? processed / s.total : 1) : null,
      imagesPerSecond: Number(labelledRate.toFixed(2)),
      eta: ended ? 0 : s.planned && rate > 0 ? Math.round(left / rate) : null,
      output: s.output,
      createdAt: new Date(s.createdAt).toISOString(),
      ...(s.startedAt && { startedAt: new Date(s.startedAt).toISOString() }),
      ...(s.finishedAt && { finishedAt: new Date(s.finishedAt).toISOString() }),
      ...(s.error && { error: s.error }),
      ...(s.message && { message: s.message }),
      ...(s.scheduleId && { scheduleId: s.scheduleId }),
      ...(s.spec.metadata && { metadata: s.spec.metadata }),
    };
  }
}
