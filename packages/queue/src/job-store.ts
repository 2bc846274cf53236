import { randomBytes, createHash } from 'node:crypto';
import { TERMINAL_STATUSES, type JobSpec, type JobStatus, type ModelInfo } from '@detq/core';
import type { RedisClient } from './config';
import type { PlanPage } from './job-data';

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
  /** Images planned for labelling so far (incremental skips excluded); final once `planned` is set. */
  total: number;
  /** Images an incremental run found already labelled (their manifest entries point at earlier results). */
  skipped: number;
  planned: boolean;
  /** Plan pages recorded; page N is chunk N (a page whose images were all skipped has no chunk job). */
  chunks: number;
  /** Pages whose chunk job is known to be added (only the last recorded page can lag behind). */
  added: number;
  /** Input entries planned so far, and the last one: a retried planning step resumes after it. */
  listed: number;
  cursor?: string;
  /** The class names and model the plan was made with, so a finaliser needs no engine. */
  names?: string[];
  model?: ModelInfo;
  finalisedAt?: number;
  error?: string;
  /** A note for users, e.g. why a run left the outputs unchanged. */
  message?: string;
  scheduleId?: string;
  /** The token name that made the job (or its schedule); '' for jobs enqueued from the CLI. */
  principal: string;
  /** Counts by chunk, summed. */
  done: number;
  failed: number;
}

const ENDED_LUA = `local function ended(s) return s == 'completed' or s == 'completed_with_errors' or s == 'failed' or s == 'cancelled' end`;

// Everything a job's end does, in one place: the job's keys expire `ttl` ms later, its output prefix is free
// again, it leaves the live set and its principal's active set (quotas), and is listed for the index sweep
// (as "id<TAB>principal", so the sweep can drop it from the principal's index too). KEYS: job, progress,
// plan, outputs, live, ended, counts, the active-set key prefix. ARGV[1]: id, ARGV[2]: ttl ms, ARGV[3]: now ms.
const ON_END = `
local function on_end(id, ttl, now)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
  local out = redis.call('HGET', KEYS[1], 'output')
  if out and redis.call('HGET', KEYS[4], out) == id then redis.call('HDEL', KEYS[4], out) end
  redis.call('ZREM', KEYS[5], id)
  local principal = redis.call('HGET', KEYS[1], 'principal') or ''
  redis.call('ZREM', KEYS[8] .. principal, id)
  redis.call('ZADD', KEYS[6], now + ttl, id .. '\t' .. principal)
end
-- KEYS[7] counts jobs by status, so /metrics reads one hash instead of scanning jobs.
local function count(from, to)
  if from ~= to then
    redis.call('HINCRBY', KEYS[7], from, -1)
    redis.call('HINCRBY', KEYS[7], to, 1)
  end
end`;

// Moves a job to a new status unless it already ended: a cancel is never overwritten by a late worker.
// ARGV[4..]: field/value pairs, the first being status.
const SET_STATUS = `${ENDED_LUA}${ON_END}
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur or ended(cur) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
count(cur, ARGV[5])
if ended(ARGV[5]) then on_end(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])) end
return 1`;

// A finaliser's end: 'completed*' is final; a cancelled job keeps its status (the outputs say what was done);
// a 'failed' job whose images are all done may be finalised again (detq finalise).
const FINISH = `${ENDED_LUA}${ON_END}
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur or cur == 'completed' or cur == 'completed_with_errors' then return 0 end
if cur == 'cancelled' then ARGV[5] = 'cancelled' end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
count(cur, ARGV[5])
if cur == 'failed' then redis.call('HDEL', KEYS[1], 'error') end
on_end(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1`;

// Creates a job unless its id exists (idempotency), refusing when a live job already writes to its output
// prefix. Returns 'created', 'exists' or the running job's id. KEYS: job, outputs, jobs, live, counts,
// the principal's jobs index, the principal's active set. ARGV: id, output, now, field/value pairs.
const CREATE = `${ENDED_LUA}
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then
  local st = redis.call('HGET', KEYS[1]:sub(1, -(#ARGV[1] + 1)) .. holder, 'status')
  if st and not ended(st) then return holder end
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], unpack(ARGV, 4))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'queued', 1)
return 'created'`;

// Progress: one field per chunk, "done,failed"; a lower count (a chunk re-run after a lost lock starts
// again from 0) never replaces a higher one, so counts never go down and a re-run is not counted twice.
// Returns the job's status, so progress writes double as cancel checks. KEYS: progress, job.
const REPORT = `
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
for i = 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old or tonumber(string.match(old, '^%d+')) <= tonumber(string.match(ARGV[i + 1], '^%d+')) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return redis.call('HGET', KEYS[2], 'status')`;

// Records plan page N (its images, where the listing stands after it) in one step, so a retried planning
// step resumes after the last recorded page and never re-derives one. KEYS: job, plan.
// ARGV: page, page json, images to label, images skipped, cursor, listed. Returns the job's status.
const RECORD_PAGE = `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return false end
if tonumber(redis.call('HGET', KEYS[1], 'chunks') or '0') ~= tonumber(ARGV[1]) then
  return redis.error_reply('plan page ' .. ARGV[1] .. ' recorded out of order')
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'chunks', tonumber(ARGV[1]) + 1, 'added', ARGV[1], 'cursor', ARGV[5], 'listed', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'total', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[4])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return st`;

// Takes an output prefix for a job's finaliser unless another live job holds it. KEYS: outputs, the job
// key prefix (the holder's key is that prefix and its id). ARGV: output, id.
const CLAIM_OUTPUT = `${ENDED_LUA}
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and holder ~= ARGV[2] then
  local st = redis.call('HGET', KEYS[2] .. holder, 'status')
  if st and not ended(st) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

export interface NewJob {
  spec: JobSpec;
  output: string;
  scheduleId?: string;
  principal?: string;
}

/** Thrown by create() when a live job already writes to the output prefix (the API answers 409). */
export class OutputBusyError extends Error {
  constructor(
    readonly output: string,
    readonly runningJobId: string,
  ) {
    super(`job ${runningJobId} is already writing to ${output}; wait for it to end or cancel it`);
    this.name = 'OutputBusyError';
  }
}

export const DEFAULT_JOB_TTL_SECONDS = 7 * 86400;

type Script = (...args: (string | number)[]) => Promise<unknown>;

/**
 * Redis-side job state under the deployment prefix: a hash per job, its plan (one field per page), a
 * progress hash with one field per chunk, an index of jobs by creation time, the set of live jobs, and the
 * output prefixes live jobs hold. A job's keys expire `ttlSeconds` after it ends.
 */
export class JobStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    readonly ttlSeconds = DEFAULT_JOB_TTL_SECONDS,
  ) {
    redis.defineCommand('detqSetStatus', { numberOfKeys: 8, lua: SET_STATUS });
    redis.defineCommand('detqFinish', { numberOfKeys: 8, lua: FINISH });
    redis.defineCommand('detqCreate', { numberOfKeys: 7, lua: CREATE });
    redis.defineCommand('detqReport', { numberOfKeys: 2, lua: REPORT });
    redis.defineCommand('detqRecordPage', { numberOfKeys: 2, lua: RECORD_PAGE });
    redis.defineCommand('detqClaimOutput', { numberOfKeys: 2, lua: CLAIM_OUTPUT });
  }

  key(...parts: string[]): string {
    return [this.prefix, 'detq', ...parts].join(':');
  }

  private script(name: string): Script {
    const fn = (this.redis as unknown as Record<string, Script>)[name]!;
    return (...args) => fn.call(this.redis, ...args);
  }

  static newId(): string {
    // Time first so ids sort by creation; BullMQ forbids ':' in custom ids.
    return `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
  }

  /** Idempotency keys map to a fixed id, so the same key can only ever create one job. */
  static idFor(idempotencyKey: string): string {
    return `k${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24)}`;
  }

  /**
   * Creates the job's state; false when a job with this id already exists. Throws OutputBusyError when a
   * live job already writes to the same output prefix: two jobs' outputs would overwrite each other.
   */
  async create(id: string, job: NewJob, now = Date.now()): Promise<boolean> {
    const fields = {
      status: 'queued',
      spec: JSON.stringify(job.spec),
      output: job.output,
      createdAt: now,
      total: 0,
      planned: 0,
      chunks: 0,
      ...(job.scheduleId && { scheduleId: job.scheduleId }),
      principal: job.principal ?? '',
    };
    const res = (await this.script('detqCreate')(
      this.key('job', id),
      this.key('outputs'),
      this.key('jobs'),
      this.key('live'),
      this.key('counts'),
      this.principalIndex(job.principal ?? ''),
      this.key('active', job.principal ?? ''),
      id,
      job.output,
      now,
      ...Object.entries(fields).flat().map(String),
    )) as string;
    if (res === 'exists') return false;
    if (res !== 'created') throw new OutputBusyError(job.output, res);
    return true;
  }

  /**
   * Takes the output prefix for this job's finaliser: true when it is free, this job's, or held by a job
   * that ended (a cancel frees the prefix at once, so a cancelled job's finaliser must take it back).
   */
  async claimOutput(id: string, output: string): Promise<boolean> {
    return (await this.script('detqClaimOutput')(this.key('outputs'), this.key('job', ''), output, id)) === 1;
  }

  private endKeys(id: string): string[] {
    return [this.key('job', id), this.key('job', id, 'progress'), this.key('job', id, 'plan'), this.key('outputs'), this.key('live'), this.key('ended'), this.key('counts'), this.key('active', '')];
  }

  private endArgs(id: string, fields: Record<string, string | number>): string[] {
    return [id, String(this.ttlSeconds * 1000), String(Date.now()), ...Object.entries(fields).flat().map(String)];
  }

  async setStatus(id: string, status: JobStatus, fields: Record<string, string | number> = {}): Promise<boolean> {
    return (await this.script('detqSetStatus')(...this.endKeys(id), ...this.endArgs(id, { status, ...fields }))) === 1;
  }

  /**
   * A finaliser's last write: the status its outputs show. Never replaces a completed job's status; a
   * cancelled job stays cancelled; a failed job whose images are all done becomes completed.
   */
  async finish(id: string, status: JobStatus, fields: Record<string, string | number> = {}): Promise<boolean> {
    return (await this.script('detqFinish')(...this.endKeys(id), ...this.endArgs(id, { status, ...fields }))) === 1;
  }

  async status(id: string): Promise<JobStatus | undefined> {
    return ((await this.redis.hget(this.key('job', id), 'status')) ?? undefined) as JobStatus | undefined;
  }

  /**
   * Records chunks' counts `[chunk, done, failed]` and reads the job status, in one command. A count
   * below the one recorded is ignored (see REPORT).
   */
  async reportChunks(id: string, counts: [number, number, number][]): Promise<JobStatus | undefined> {
    const fields = counts.flatMap(([chunk, done, failed]) => [`c${chunk}`, `${done},${failed}`]);
    return ((await this.script('detqReport')(this.key('job', id, 'progress'), this.key('job', id), ...fields)) ?? undefined) as JobStatus | undefined;
  }

  /** The finaliser's exact counts per chunk (what the outputs hold), replacing the running ones. */
  async setFinalCounts(id: string, counts: [number, number, number][]): Promise<void> {
    if (counts.length === 0) return;
    const key = this.key('job', id, 'progress');
    await this.redis.hset(key, ...counts.flatMap(([chunk, done, failed]) => [`c${chunk}`, `${done},${failed}`]));
  }

  /** Records plan page `index` and where the listing stands after it; returns the job's status. */
  async recordPage(id: string, index: number, page: PlanPage, cursor: string, listed: number): Promise<JobStatus | undefined> {
    const res = await this.script('detqRecordPage')(
      this.key('job', id),
      this.key('job', id, 'plan'),
      index,
      JSON.stringify(page),
      page.cancelled ? 0 : page.images.length,
      page.skipped?.length ?? 0,
      cursor,
      listed,
    );
    return (res ?? undefined) as JobStatus | undefined;
  }

  /** Plan pages `from..to-1` (one HMGET). */
  async pages(id: string, from: number, to: number): Promise<PlanPage[]> {
    if (to <= from) return [];
    const fields = Array.from({ length: to - from }, (_, i) => String(from + i));
    const values = await this.redis.hmget(this.key('job', id, 'plan'), ...fields);
    return values.map((v, i) => {
      if (v === null) throw new Error(`job ${id}: plan page ${from + i} is missing`);
      return JSON.parse(v) as PlanPage;
    });
  }

  /** Sets fields of a job (what the plan was made with). */
  async update(id: string, fields: Record<string, string | number>): Promise<void> {
    await this.redis.hset(this.key('job', id), fields);
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
      skipped: Number(h.skipped ?? 0),
      planned: h.planned === '1',
      chunks: Number(h.chunks ?? 0),
      added: Number(h.added ?? 0),
      listed: Number(h.listed ?? 0),
      ...(h.cursor !== undefined && { cursor: h.cursor }),
      ...(h.names && { names: JSON.parse(h.names) as string[] }),
      ...(h.model && { model: JSON.parse(h.model) as ModelInfo }),
      ...(h.finalisedAt && { finalisedAt: num(h.finalisedAt) }),
      ...(h.error && { error: h.error }),
      ...(h.message && { message: h.message }),
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

  /** Jobs not yet ended, oldest first (what the reconciliation sweep checks). */
  async live(limit = 1000): Promise<string[]> {
    return this.redis.zrange(this.key('live'), 0, limit - 1);
  }

  /** Drops expired jobs from the jobs index (their hashes expired by themselves); returns how many. */
  async sweepExpired(now = Date.now()): Promise<number> {
    const members = await this.redis.zrangebyscore(this.key('ended'), '-inf', now, 'LIMIT', 0, 1000);
    if (members.length === 0) return 0;
    const multi = this.redis.multi().zrem(this.key('ended'), ...members);
    for (const m of members) {
      const [id = m, principal = ''] = m.split('\t');
      multi.zrem(this.key('jobs'), id).zrem(this.principalIndex(principal), id);
    }
    await multi.exec();
    return members.length;
  }

  /** Marks a job cancelled; false when it had already ended (or does not exist). */
  cancel(id: string): Promise<boolean> {
    return this.setStatus(id, 'cancelled', { finishedAt: Date.now(), error: 'cancelled by request' });
  }

  /** Undoes create() when the job could not be queued, so no state is left that no worker will ever move. */
  async remove(id: string, principal = ''): Promise<void> {
    const state = await this.get(id);
    const multi = this.redis.multi().unlink(this.key('job', id), this.key('job', id, 'progress'), this.key('job', id, 'plan'));
    if (state) multi.hdel(this.key('outputs'), state.output);
    await multi
      .zrem(this.key('jobs'), id)
      .zrem(this.key('live'), id)
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
   * planning), for quotas. A job's end removes it from the set; jobs whose state expired are dropped here.
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
