import { CronExpressionParser } from 'cron-parser';
import { DetqError, type ResolvedCaps, type ScheduleSpec, type ScheduleView } from '@detq/core';
import type { DetqQueues } from './detq-queues';
import { setJobPriority } from './fair-share';
import { SET_JOB_OPTIONS, type Caller } from './job-client';

export type { ScheduleView };

/** Default least time between two runs of a schedule (DETQ_MIN_SCHEDULE_INTERVAL_S). */
export const DEFAULT_MIN_SCHEDULE_INTERVAL_S = 60;

/** Schedule ids are per principal: BullMQ's scheduler key is `<principal>~<id>` (`<id>` for the CLI). */
const schedulerKey = (principal: string, id: string) => (principal ? `${principal}~${id}` : id);
function splitKey(key: string): { principal: string; id: string } {
  const i = key.indexOf('~');
  return i < 0 ? { principal: '', id: key } : { principal: key.slice(0, i), id: key.slice(i + 1) };
}

/** The shortest gap between the next runs of a cron pattern, in seconds (throws on a bad pattern). */
export function shortestCronInterval(pattern: string, tz?: string, runs = 32): number {
  const it = CronExpressionParser.parse(pattern, { ...(tz && { tz }) });
  let prev = it.next().getTime();
  let shortest = Infinity;
  for (let i = 0; i < runs && it.hasNext(); i++) {
    const t = it.next().getTime();
    shortest = Math.min(shortest, (t - prev) / 1000);
    prev = t;
  }
  return shortest;
}

/**
 * Nightly pipelines on BullMQ job schedulers: each tick adds a set job from the schedule's spec; the set
 * processor gives every run its own output folder, and an incremental spec only labels what is new.
 */
export class ScheduleClient {
  constructor(
    private readonly queues: DetqQueues,
    private readonly minIntervalS = DEFAULT_MIN_SCHEDULE_INTERVAL_S,
  ) {}

  /** Adds or replaces the principal's schedule `s.id`. Throws DetqError('BAD_SCHEDULE') naming the cron problem. */
  async add(s: ScheduleSpec, by: { principal: string; caps?: ResolvedCaps } = { principal: '' }): Promise<ScheduleView> {
    let interval: number;
    try {
      interval = shortestCronInterval(s.cron, s.tz);
    } catch (err) {
      throw new DetqError('BAD_SCHEDULE', `cron: ${(err as Error).message}`, { cause: err });
    }
    if (interval < this.minIntervalS)
      throw new DetqError('BAD_SCHEDULE', `cron: runs every ${interval} s; schedules run at most once every ${this.minIntervalS} s`);
    const key = schedulerKey(by.principal, s.id);
    const data = { spec: s.spec, scheduleId: s.id, ...(by.principal && { principal: by.principal }), ...(by.caps && { caps: by.caps }) };
    try {
      await this.queues.sets.upsertJobScheduler(
        key,
        { pattern: s.cron, ...(s.tz && { tz: s.tz }) },
        { name: 'set', data, opts: { ...SET_JOB_OPTIONS, priority: setJobPriority(s.spec.priority) } },
      );
    } catch (err) {
      // BullMQ rejects a bad pattern or time zone here; the caller gets it as a field error.
      throw new DetqError('BAD_SCHEDULE', `cron: ${(err as Error).message}`, { cause: err });
    }
    return (await this.get(s.id, { principal: by.principal, admin: false })) ?? { id: s.id, cron: s.cron };
  }

  async get(id: string, caller: Caller = { principal: '', admin: false }): Promise<ScheduleView | undefined> {
    const s = await this.queues.sets.getJobScheduler(schedulerKey(caller.principal, id));
    return s ? ScheduleClient.toView(s) : undefined;
  }

  /** The caller's schedules; an admin's list holds every principal's. */
  async list(caller: Caller = { principal: '', admin: true }): Promise<ScheduleView[]> {
    const all = (await this.queues.sets.getJobSchedulers(0, 9999, true)).map(ScheduleClient.toView);
    return caller.admin ? all : all.filter((s) => (s.owner ?? '') === caller.principal);
  }

  async remove(id: string, caller: Caller = { principal: '', admin: false }): Promise<boolean> {
    return this.queues.sets.removeJobScheduler(schedulerKey(caller.principal, id));
  }

  private static toView(s: { key: string; pattern?: string | null; tz?: string | null; next?: number | null }): ScheduleView {
    const { principal, id } = splitKey(s.key);
    return {
      id,
      cron: s.pattern ?? '',
      ...(s.tz && { tz: s.tz }),
      ...(s.next && { next: new Date(s.next).toISOString() }),
      ...(principal && { owner: principal }),
    };
  }
}
