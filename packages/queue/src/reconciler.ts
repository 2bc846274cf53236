import type { Job } from 'bullmq';
import type { DetqQueues } from './detq-queues';
import type { SetJobData } from './job-data';

/** A live job whose BullMQ set job is gone for this long is considered lost (enqueue writes state first). */
const LOST_AFTER_MS = 60_000;

/**
 * Brings detq's job state in line with BullMQ where BullMQ ended a set job outside the processor (the
 * stall limit after repeated worker deaths, a job removed by hand): from the worker's `failed` event at
 * once, and from a periodic sweep of the live jobs for whatever no worker saw. Also drops expired jobs from
 * the jobs index, and ended chunks from the fair-share backlogs. Every step is idempotent, so any number
 * of workers may run it.
 */
export class Reconciler {
  /** Chunk ids in a backlog with no BullMQ job, and when this process first saw that. */
  private readonly chunkMissingSince = new Map<string, number>();
  /** The sweep under way: a timer firing while it still runs joins it instead of starting a second. */
  private sweeping?: Promise<{ failed: string[]; expired: number; backlog: string[] }>;

  constructor(private readonly queues: DetqQueues) {}

  /** The set worker's `failed` event: BullMQ emits it for every failed attempt; only a final one counts. */
  async onSetFailed(job: Job<SetJobData> | undefined): Promise<void> {
    if (job?.id) await this.reconcile(job.id);
  }

  /** Checks one live job against BullMQ; returns true when it was marked failed. */
  async reconcile(id: string, now = Date.now()): Promise<boolean> {
    const { sets, jobs } = this.queues;
    const state = await sets.getJobState(id);
    if (state === 'failed') {
      const job = await sets.getJob(id);
      const reason = job?.failedReason || 'failed in the queue';
      return jobs.setStatus(id, 'failed', { finishedAt: now, error: reason });
    }
    if (state === 'unknown') {
      const job = await jobs.get(id);
      if (job && now - job.createdAt > LOST_AFTER_MS)
        return jobs.setStatus(id, 'failed', { finishedAt: now, error: 'the job is no longer in the queue' });
    }
    return false;
  }

  /**
   * One sweep: every live job reconciled, expired jobs dropped from the index, and chunks that ended
   * without leaving their tenant's fair-share backlog taken out of it.
   */
  sweep(now = Date.now()): Promise<{ failed: string[]; expired: number; backlog: string[] }> {
    this.sweeping ??= this.sweepOnce(now).finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async sweepOnce(now: number): Promise<{ failed: string[]; expired: number; backlog: string[] }> {
    const failed: string[] = [];
    for (const id of await this.queues.jobs.live()) if (await this.reconcile(id, now)) failed.push(id);
    const expired = await this.queues.jobs.sweepExpired(now);
    const seen = new Set<string>();
    const backlog = await this.queues.fair.repair((id) => {
      seen.add(id);
      return this.chunkEnded(id, now);
    });
    // Ids another worker's sweep (or a late end) took out are not tracked any longer.
    for (const id of this.chunkMissingSince.keys()) if (!seen.has(id)) this.chunkMissingSince.delete(id);
    return { failed, expired, backlog };
  }

  /**
   * Whether a backlog's chunk has ended: finished in BullMQ, or without a BullMQ job for LOST_AFTER_MS
   * (removed by hand, or by retention after an end nobody recorded). The wait matters because the
   * planner counts a chunk just before adding its job.
   */
  private async chunkEnded(id: string, now: number): Promise<boolean> {
    const state = await this.queues.chunks.getJobState(id);
    if (state !== 'unknown') {
      this.chunkMissingSince.delete(id);
      return state === 'completed' || state === 'failed';
    }
    const since = this.chunkMissingSince.get(id) ?? now;
    if (now - since < LOST_AFTER_MS) {
      this.chunkMissingSince.set(id, since);
      return false;
    }
    this.chunkMissingSince.delete(id);
    return true;
  }
}
