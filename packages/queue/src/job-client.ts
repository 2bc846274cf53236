import { TERMINAL_STATUSES, type JobSpec, type JobStatus, type JobView, type ResolvedCaps } from '@detq/core';
import type { DetqQueues } from './detq-queues';
import { setJobPriority } from './fair-share';
import { JobStore, type JobState } from './job-store';
import { outputFor } from './set-processor';

export type { JobView };

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

/**
 * Who is asking: `principal` owns what it creates; `undefined` (admin tokens, the CLI) sees every
 * job. A job of another principal is reported exactly as a job that does not exist.
 */
export interface Caller {
  principal: string;
  admin: boolean;
}

/** Who made a job and what it may touch when it runs (checked again by the worker when it plans). */
export interface Submitter {
  principal: string;
  caps?: ResolvedCaps;
}

/** Producer side of the job model: enqueue, look up, list, cancel. Used by the API and the CLI. */
export class JobClient {
  constructor(private readonly queues: DetqQueues) {}

  /**
   * Idempotency keys are per principal. The CLI (no submitter) enqueues as principal ''. Throws
   * OutputBusyError when a live job already writes to the spec's output prefix.
   */
  async enqueue(spec: JobSpec, by: Submitter = { principal: '' }): Promise<EnqueueResult> {
    const { jobs, sets } = this.queues;
    const { principal } = by;
    const id = spec.idempotencyKey ? JobStore.idFor(`${principal}\n${spec.idempotencyKey}`) : JobStore.newId();
    if (!(await jobs.create(id, { spec, output: outputFor(spec), principal }))) {
      return { id, status: (await jobs.status(id)) ?? 'queued', existing: true };
    }
    const kept = { age: jobs.ttlSeconds };
    try {
      const data = { spec, ...(principal && { principal }), ...(by.caps && { caps: by.caps }) };
      await sets.add('set', data, { ...SET_JOB_OPTIONS, removeOnComplete: kept, removeOnFail: kept, jobId: id, priority: setJobPriority(spec.priority) });
    } catch (err) {
      await jobs.remove(id, principal).catch(() => undefined);
      throw err;
    }
    return { id, status: 'queued', existing: false };
  }

  private async owned(id: string, caller?: Caller) {
    const state = await this.queues.jobs.get(id);
    return state && (!caller || caller.admin || state.principal === caller.principal) ? state : undefined;
  }

  async view(id: string, caller?: Caller, now = Date.now()): Promise<JobView | undefined> {
    const state = await this.owned(id, caller);
    return state && JobClient.toView(state, now);
  }

  async list(options: { status?: JobStatus; limit: number; cursor?: number }, caller?: Caller): Promise<{ jobs: JobView[]; next?: number }> {
    const now = Date.now();
    const { jobs, next } = await this.queues.jobs.list({ ...options, ...(caller && !caller.admin && { principal: caller.principal }) });
    return { jobs: jobs.map((j) => JobClient.toView(j, now)), ...(next !== undefined && { next }) };
  }

  /** 'cancelled', or why not. */
  async cancel(id: string, caller?: Caller): Promise<'cancelled' | 'not_found' | 'already_ended'> {
    const state = await this.owned(id, caller);
    const status = state?.status;
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
      ...(s.spec.model && { model: s.spec.model.uri }),
      ...(s.principal && { owner: s.principal }),
      ...(s.spec.metadata && { metadata: s.spec.metadata }),
    };
  }
}
