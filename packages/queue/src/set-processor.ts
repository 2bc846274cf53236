import { UnrecoverableError, WaitingChildrenError, type Job } from 'bullmq';
import { FatalError, type JobSpec } from '@detq/core';
import { joinUri } from '@detq/storage';
import type { EnginePool, LabelRuntime, ModelRef } from './engine-pool';
import type { Finaliser, Summary } from './finaliser';
import { IncrementalIndex } from './incremental-index';
import type { SetJobData } from './job-data';
import type { JobStore } from './job-store';
import type { MetricsStore } from './metrics-store';
import type { Planner } from './planner';
import { sendWebhook } from './webhook';

export interface SetProcessorDeps {
  jobs: JobStore;
  metrics: MetricsStore;
  planner: Planner;
  finaliser: Finaliser;
  pool: EnginePool;
  webhookHosts: readonly string[];
  log: (line: string) => void;
}

/** The output prefix of a job: scheduled runs each get their own folder under the spec's. */
export function outputFor(spec: JobSpec, scheduledAt?: number): string {
  const base = spec.output.uri.endsWith('/') ? spec.output.uri : `${spec.output.uri}/`;
  if (scheduledAt === undefined) return base;
  const stamp = new Date(scheduledAt).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return joinUri(base, `runs/${stamp}/`);
}

export function modelRefOf(spec: JobSpec): ModelRef {
  return {
    ...(spec.model?.uri && { uri: spec.model.uri }),
    ...(spec.model?.sha256 && { sha256: spec.model.sha256 }),
    ...(spec.params.imgsz && { imgsz: spec.params.imgsz }),
  };
}

/**
 * One set job, in BullMQ's step pattern: plan (chunks become children), wait for the children, then
 * finalise. The job's status lives in the JobStore, whose transitions never overwrite a cancel.
 */
export class SetProcessor {
  constructor(private readonly deps: SetProcessorDeps) {}

  async process(job: Job<SetJobData>, token?: string): Promise<Summary | { status: 'cancelled' }> {
    const { jobs } = this.deps;
    const id = job.id!;
    const { spec } = job.data;
    const model = modelRefOf(spec);
    try {
      if ((job.data.step ?? 'plan') === 'plan') {
        if (job.data.scheduleId)
          await jobs.create(id, { spec, output: outputFor(spec, job.timestamp), scheduleId: job.data.scheduleId });
        if (!(await jobs.setStatus(id, 'planning', { startedAt: Date.now() }))) return { status: 'cancelled' };
        const state = await jobs.get(id);
        const fingerprint = spec.incremental ? await this.withRuntime(model, (rt) => fingerprintOf(spec, rt)) : undefined;
        const plan = await this.deps.planner.plan(job, state!.output, model, fingerprint);
        if (plan.listed === 0) throw new UnrecoverableError('the input has no images');
        await jobs.setStatus(id, 'running', { planned: 1, total: plan.total, chunks: plan.chunks });
        await job.updateData({ ...job.data, step: 'finalise' });
        if (await job.moveToWaitingChildren(token!)) throw new WaitingChildrenError();
      }
      const state = (await jobs.get(id))!;
      const summary = await this.withRuntime(model, (rt) => this.deps.finaliser.finalise(job, state, rt));
      await jobs.setStatus(id, summary.status, { finishedAt: Date.now() });
      await this.deps.metrics.recordErrors(summary.errorsByCode);
      if (spec.webhook)
        await sendWebhook(spec.webhook.url, summary, this.deps.webhookHosts).catch((err: unknown) =>
          this.deps.log(`job ${id}: webhook failed: ${(err as Error).message}`),
        );
      return summary;
    } catch (err) {
      if (err instanceof WaitingChildrenError) throw err;
      const final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (final) await jobs.setStatus(id, 'failed', { finishedAt: Date.now(), error: (err as Error).message });
      throw err;
    }
  }

  private async withRuntime<T>(model: ModelRef, fn: (rt: LabelRuntime) => Promise<T> | T): Promise<T> {
    const rt = await this.deps.pool.acquire(model).catch((err: unknown) => {
      // A bad model stays bad; a transient fetch failure (after the outage budget) is retried.
      throw err instanceof FatalError ? new UnrecoverableError(`cannot load the model: ${err.message}`) : err;
    });
    try {
      return await fn(rt);
    } finally {
      this.deps.pool.release(model);
    }
  }
}

function fingerprintOf(spec: JobSpec, rt: LabelRuntime): string {
  const { imgsz: _imgsz, ...params } = spec.params;
  return IncrementalIndex.fingerprint(rt.model.sha256, params, rt.model.imgsz);
}
