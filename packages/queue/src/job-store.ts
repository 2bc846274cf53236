import { randomBytes, createHash } from 'node:crypto';
import { TERMINAL_STATUSES, type JobSpec, type JobStatus } from '@detq/core';
import type { RedisClient } from './config';

/** The detq-owned state of one set job (BullMQ keeps the queue mechanics, this keeps what users see). */
export interface JobState {
  id: string;
  status: JobStatus;
  spec: JobSpec;
  /** Effective output prefix (scheduled runs get a per-run folder under the spec's). */
  output: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Images planned so far; final once `planned` is set. */
  total: number;
  planned: boolean;
  chunks: number;
  error?: string;
  scheduleId?: string;
  /** The token name that made the job (or its schedule); '' for jobs enqueued from the CLI. */
  principal: string;
  /** Counts by chunk, summed. */
  done: number;
  failed: number;
}

// Moves a job to a new status unless it already ended: a cancel is never overwritten by a late worker.
// KEYS[2] counts jobs by status, so /metrics reads one hash instead of scanning jobs. ARGV[2] is the status.
const SET_STATUS = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
if cur == 'completed' or cur == 'completed_with_errors' or cur == 'failed' or cur == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
if cur ~= ARGV[2] then
  redis.call('HINCRBY', KEYS[2], cur, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
end
return 1`;

// Writes fields and returns the job's status in one command: progress writes double as cancel checks.
const WRITE_AND_READ_STATUS = `
redis.call('HSET', KEYS[1], unpack(ARGV))
return redis.call('HGET', KEYS[2], 'status')`;

export interface NewJob {
  spec: JobSpec;
  output: string;
  scheduleId?: string;
  principal?: string;
}

/**
 * Redis-side job state under the deployment prefix: a hash per job, a progress hash per job with one field
 * per chunk (a retried chunk overwrites its own field, so counts never double), an index of jobs by
 * creation time and idempotency keys.
 */
export class JobStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    redis.defineCommand('detqSetStatus', { numberOfKeys: 2, lua: SET_STATUS });
    redis.defineCommand('detqWriteAndReadStatus', { numberOfKeys: 2, lua: WRITE_AND_READ_STATUS });
  }

  key(...parts: string[]): string {
    return [this.prefix, 'detq', ...parts].join(':');
  }

  static newId(): string {
    // Time first so ids sort by creation; BullMQ forbids ':' in custom ids.
    return `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
  }

  /** Idempotency keys map to a fixed id, so the same key can only ever create one job. */
  static idFor(idempotencyKey: string): string {
    return `k${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24)}`;
  }

  /** Creates the job's state; false when a job with this id already exists. */
  async create(id: string, job: NewJob, now = Date.now()): Promise<boolean> {
    const key = this.key('job', id);
    if (!(await this.redis.hsetnx(key, 'id', id))) return false;
    await this.redis
      .multi()
      .hset(key, {
        status: 'queued',
        spec: JSON.stringify(job.spec),
        output: job.output,
        createdAt: now,
        total: 0,
        planned: 0,
        chunks: 0,
        ...(job.scheduleId && { scheduleId: job.scheduleId }),
        principal: job.principal ?? '',
      })
      .zadd(this.key('jobs'), now, id)
      .zadd(this.principalIndex(job.principal ?? ''), now, id)
      .zadd(this.key('active', job.principal ?? ''), now, id)
      .hincrby(this.key('counts'), 'queued', 1)
      .exec();
    return true;
  }

  async setStatus(id: string, status: JobStatus, fields: Record<string, string | number> = {}): Promise<boolean> {
    const args = Object.entries({ status, ...fields }).flat().map(String);
    const cmd = (this.redis as unknown as Record<string, (...args: string[]) => Promise<number>>).detqSetStatus!;
    return (await cmd.call(this.redis, this.key('job', id), this.key('counts'), ...args)) === 1;
  }

  async status(id: string): Promise<JobStatus | undefined> {
    return ((await this.redis.hget(this.key('job', id), 'status')) ?? undefined) as JobStatus | undefined;
  }

  /** Records chunks' counts `[chunk, done, failed]` and reads the job status, in one command. */
  reportChunks(id: string, counts: [number, number, number][]): Promise<JobStatus | undefined> {
    const fields = counts.flatMap(([chunk, done, failed]) => [`c${chunk}`, `${done},${failed}`]);
    return this.writeAndReadStatus(this.key('job', id, 'progress'), id, fields);
  }

  /** Records planning progress and reads the status (one command), so planning stops on cancel. */
  recordPlanned(id: string, total: number, chunks: number): Promise<JobStatus | undefined> {
    return this.writeAndReadStatus(this.key('job', id), id, ['total', String(total), 'chunks', String(chunks)]);
  }

  private async writeAndReadStatus(hash: string, id: string, fields: string[]): Promise<JobStatus | undefined> {
    const cmd = (this.redis as unknown as Record<string, (...args: string[]) => Promise<string | null>>).detqWriteAndReadStatus!;
    return ((await cmd.call(this.redis, hash, this.key('job', id), ...fields)) ?? undefined) as JobStatus | undefined;
  }

  /** Jobs by status, from counters kept on every transition: O(1) for /metrics. */
  async statusCounts(): Promise<Record<string, number>> {
    const all = await this.redis.hgetall(this.key('counts'));
    return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Number(v)]));
  }

  private principalIndex(principal: string): string {
    return this.key('jobs', 'by', principal);
  }

  async get(id: string): Promise<JobState | undefined> {
    return (await this.getMany([id]))[0];
  }

  /** Several jobs in one round trip (unknown ids give undefined). */
  async getMany(ids: readonly string[]): Promise<(JobState | undefined)[]> {
    if (ids.length === 0) return [];
    const p = this.redis.pipeline();
    for (const id of ids) p.hgetall(this.key('job', id)).hvals(this.key('job', id, 'progress'));
    const res = (await p.exec()) ?? [];
    return ids.map((_, i) => JobStore.parse(res[2 * i]?.[1] as Record<string, string> | undefined, res[2 * i + 1]?.[1] as string[] | undefined));
  }

  private static parse(h: Record<string, string> = {}, progress: string[] = []): JobState | undefined {
    if (!h.id) return undefined;
    let done = 0;
    let failed = 0;
    for (const v of progress) {
      const [d, f] = v.split(',').map(Number);
      done += d ?? 0;
      failed += f ?? 0;
    }
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    return {
      id: h.id,
      status: h.status as JobStatus,
      spec: JSON.parse(h.spec ?? '{}') as JobSpec,
      output: h.output ?? '',
      createdAt: Number(h.createdAt),
      ...(h.startedAt && { startedAt: num(h.startedAt) }),
      ...(h.finishedAt && { finishedAt: num(h.finishedAt) }),
      total: Number(h.total ?? 0),
      planned: h.planned === '1',
      chunks: Number(h.chunks ?? 0),
      ...(h.error && { error: h.error }),
      ...(h.scheduleId && { scheduleId: h.scheduleId }),
      principal: h.principal ?? '',
      done,
      failed,
    };
  }

  /**
   * Newest first; `cursor` is the createdAt (ms) to continue below. With `principal`, only that
   * principal's jobs (its own index, so a tenant's page never costs other tenants' jobs).
   */
  async list(options: { status?: JobStatus; limit: number; cursor?: number; principal?: string }): Promise<{ jobs: JobState[]; next?: number }> {
    const jobs: JobState[] = [];
    const index = options.principal === undefined ? this.key('jobs') : this.principalIndex(options.principal);
    let max = options.cursor === undefined ? '+inf' : `(${options.cursor}`;
    // Pages of ids until `limit` jobs match the filter; the filter is applied here, not in Redis.
    for (;;) {
      const page = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', 0, Math.min(100, options.limit * 2));
      if (page.length === 0) return { jobs };
      const states = await this.getMany(page.filter((_, i) => i % 2 === 0));
      for (let i = 0; i < page.length; i += 2) {
        const job = states[i / 2];
        max = `(${page[i + 1]}`;
        if (job && (!options.status || job.status === options.status)) jobs.push(job);
        if (jobs.length === options.limit) return { jobs, next: Number(page[i + 1]) };
      }
    }
  }

  /** Marks a job cancelled; false when it had already ended (or does not exist). */
  cancel(id: string): Promise<boolean> {
    return this.setStatus(id, 'cancelled', { finishedAt: Date.now(), error: 'cancelled by request' });
  }

  /** Undoes create() when the job could not be queued, so no state is left that no worker will ever move. */
  async remove(id: string, principal = ''): Promise<void> {
    await this.redis
      .multi()
      .unlink(this.key('job', id), this.key('job', id, 'progress'))
      .zrem(this.key('jobs'), id)
      .zrem(this.principalIndex(principal), id)
      .zrem(this.key('active', principal), id)
      .hincrby(this.key('counts'), 'queued', -1)
      .exec();
  }

  /** Claims the one webhook delivery of a job's end; false when it was already claimed. */
  async claimWebhook(id: string): Promise<boolean> {
    return (await this.redis.set(this.key('job', id, 'webhook'), String(Date.now()), 'EX', 30 * 86400, 'NX')) === 'OK';
  }

  /**
   * A principal's unfinished jobs and their images (planned totals, or the inline list before
   * planning), for quotas. Ended jobs leave the set here, lazily: no extra write on the hot path.
   */
  async usage(principal: string): Promise<{ jobs: number; images: number }> {
    const key = this.key('active', principal);
    const ids = await this.redis.zrange(key, 0, -1);
    const states = await this.getMany(ids);
    const ended = ids.filter((_, i) => !states[i] || TERMINAL_STATUSES.includes(states[i]!.status));
    if (ended.length) await this.redis.zrem(key, ...ended);
    const live = states.filter((s): s is JobState => !!s && !ended.includes(s.id));
    const images = live.reduce((n, s) => n + (s.planned || s.total ? s.total : (s.spec.input.images?.length ?? 0)), 0);
    return { jobs: live.length, images };
  }
}
