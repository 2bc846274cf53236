import { DetqError, type ScheduleSpec } from '@detq/core';
import type { DetqQueues } from './detq-queues';
import { SET_JOB_OPTIONS } from './job-client';

export interface ScheduleView {
  id: string;
  cron: string;
  tz?: string;
  next?: string;
}

/**
 * Nightly pipelines on BullMQ job schedulers: each tick adds a set job from the schedule's spec; the set
 * processor gives every run its own output folder, and an incremental spec only labels what is new.
 */
export class ScheduleClient {
  constructor(private readonly queues: DetqQueues) {}

  async add(s: ScheduleSpec): Promise<ScheduleView> {
    try {
      await this.queues.sets.upsertJobScheduler(
        s.id,
        { pattern: s.cron, ...(s.tz && { tz: s.tz }) },
        { name: 'set', data: { spec: s.spec, scheduleId: s.id }, opts: { ...SET_JOB_OPTIONS, ...(s.spec.priority && { priority: s.spec.priority }) } },
      );
    } catch (err) {
      // BullMQ rejects a bad pattern or time zone here; the caller gets it as a field error.
      throw new DetqError('BAD_SCHEDULE', `cron: ${(err as Error).message}`, { cause: err });
    }
    return (await this.get(s.id)) ?? { id: s.id, cron: s.cron };
  }

  async get(id: string): Promise<ScheduleView | undefined> {
    const s = await this.queues.sets.getJobScheduler(id);
    return s ? ScheduleClient.toView(s) : undefined;
  }

  async list(): Promise<ScheduleView[]> {
    return (await this.queues.sets.getJobSchedulers(0, 999, true)).map(ScheduleClient.toView);
  }

  async remove(id: string): Promise<boolean> {
    return this.queues.sets.removeJobScheduler(id);
  }

  private static toView(s: { key: string; pattern?: string | null; tz?: string | null; next?: number | null }): ScheduleView {
    return {
      id: s.key,
      cron: s.pattern ?? '',
      ...(s.tz && { tz: s.tz }),
      ...(s.next && { next: new Date(s.next).toISOString() }),
    };
  }
}
