import { UnrecoverableError, WaitingChildrenError, type Job } from 'bullmq';
import { FatalError, outOfScope, overCaps, type JobSpec } from '@detq/core';
import { inputFromJob, noImagesMessage } from '@detq/pipeline';
import { joinUri } from '@detq/storage';
import type { EnginePool, LabelRuntime, ModelRef } from './engine-pool';
import type { Finaliser, Summary } from './finaliser';
import { IncrementalIndex } from './incremental-index';
import type { ChunkResult, SetJobData } from './job-data';
import { OutputBusyError, type JobStore } from './job-store';
import type { MetricsStore } from './metrics-store';
import type { PlanAccess, Planner } from './planner';
import type { PrincipalStore } from './principal-store';
import { sendWebhook, type WebhookPolicy } from './webhook';

export interface SetProcessorDeps {
  jobs: JobStore;
  metrics: MetricsStore;
  planner: Planner;
  finaliser: Finaliser;
  pool: EnginePool;
  principals: PrincipalStore;
  webhooks: WebhookPolicy & {
    /** Signs webhooks of jobs without a token (CLI jobs); token jobs use their token's secret. */
    secret?: string;
    attempts?: number;
    backoffMs?: number;
  };
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
 * finalise. The job's status lives in the JobStore, whose transitions never overwrite a cancel. A cancel
 * does not skip the steps: planning records the rest of the input as cancelled and the finaliser writes
 * a manifest that names every image, so every way a job ends reaches the store and the outputs.
 */
export class SetProcessor {
  constructor(private readonly deps: SetProcessorDeps) {}

  async process(job: Job<SetJobData>, token?: string): Promise<Summary> {
    const { jobs } = this.deps;
    const id = job.id!;
    const { spec } = job.data;
    const model = modelRefOf(spec);
    try {
      if ((job.data.step ?? 'plan') === 'plan') {
        if (job.data.scheduleId)
          await jobs
            .create(id, { spec, output: outputFor(spec, job.timestamp), scheduleId: job.data.scheduleId, ...(job.data.principal && { principal: job.data.principal }) })
            .catch((err: unknown) => {
            throw err instanceof OutputBusyError ? new UnrecoverableError(err.message) : err;
          });
        const state = await jobs.get(id);
        if (!state) throw new UnrecoverableError(`job ${id} has no state (it may have expired)`);
        // A retried planning step keeps the first attempt's start: img/s is over the job's wall time.
        await jobs.setStatus(id, 'planning', state.startedAt ? {} : { startedAt: Date.now() });
        // The names and model go into the job state, so the finaliser (or `detq finalise`) needs no engine.
        const fingerprint = await this.withRuntime(model, async (rt) => {
          await jobs.update(id, { names: JSON.stringify(rt.names), model: JSON.stringify(rt.model) });
          return spec.incremental ? fingerprintOf(spec, rt) : undefined;
        });
        // Planned even when cancelled meanwhile: the rest of the input is recorded as cancelled pages, so
        // the manifest names every image.
        const access = await this.access(job.data);
        const plan = await this.deps.planner.plan(job, state.output, model, access, fingerprint);
        if (plan.listed === 0) throw new UnrecoverableError(noImagesMessage(inputFromJob(spec.input), spec.input));
        await jobs.update(id, { planned: 1, added: plan.chunks });
        await jobs.setStatus(id, 'running');
        await job.updateData({ ...job.data, step: 'finalise' });
        if (await job.moveToWaitingChildren(token!)) throw new WaitingChildrenError();
      }
      const engines = Object.values(await job.getChildrenValues<ChunkResult>()).map((r) => r.engine);
      const before = await jobs.get(id);
      const summary = await this.deps.finaliser.finalise(id, { engines });
      if (before?.finalisedAt && before.status !== 'failed') return summary; // finalised before: reported then
      await this.deps.metrics.recordErrors(summary.errorsByCode);
      await this.deps.metrics.recordImages(summary.counts.labelled, summary.counts.failed);
      if (spec.webhook) await this.notify(id, spec.webhook.url, job.data.principal, summary);
      return summary;
    } catch (err) {
      if (err instanceof WaitingChildrenError) throw err;
      const final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (final) await jobs.setStatus(id, 'failed', { finishedAt: Date.now(), error: (err as Error).message });
      throw err;
    }
  }

  /**
   * The job's token as it is now (a schedule fires long after it was made): a revoked token, a URI
   * now outside its scopes or a spec over its caps fails the run with that reason recorded.
   */
  private async access(data: SetJobData): Promise<PlanAccess> {
    const { principal } = data;
    if (!principal) return { principal: '', ...(data.caps && { maxImages: data.caps.maxImages, maxObjectBytes: data.caps.maxObjectBytes }) };
    const record = await this.deps.principals.get(principal);
    if (!record) throw new UnrecoverableError(`token ${principal} no longer exists (revoked)`);
    const problems = [...outOfScope(data.spec, record.scopes), ...overCaps(data.spec, record.caps)];
    if (problems.length)
      throw new UnrecoverableError(`refused for token ${principal}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
    return { principal, scopes: record.scopes, maxImages: record.caps.maxImages, maxObjectBytes: record.caps.maxObjectBytes };
  }

  /** At most one delivery per job end: a re-run finaliser finds the claim and sends nothing. */
  private async notify(id: string, url: string, principal: string | undefined, summary: Summary): Promise<void> {
    const { webhooks, jobs, log } = this.deps;
    try {
      const secret = principal ? (await this.deps.principals.get(principal))?.webhookSecret : webhooks.secret;
      if (!secret) throw new Error(principal ? `token ${principal} has no webhookSecret` : 'DETQ_WEBHOOK_SECRET is not set');
      if (!(await jobs.claimWebhook(id))) return;
      await sendWebhook({ url, body: summary, idempotencyKey: `${id}:${summary.status}`, secret }, webhooks, webhooks);
    } catch (err) {
      log(`job ${id}: webhook failed: ${(err as Error).message}`);
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
