import type { Job, Worker } from 'bullmq';
import type { RedisClient } from './config';
import { DEFAULT_PRIORITY } from '@detq/core';
import type { ChunkJobData } from './job-data';

/**
 * Chunk order across tenants, through BullMQ priorities. BullMQ serves jobs without a priority before
 * every prioritised one, and lower numbers first; detq gives every job a priority so `priority: 1`
 * is served first whatever BullMQ's encoding.
 *
 * Within one priority level, a chunk's rank is its tenant's backlog when it is added: a tenant with
 * 5,000 chunks waiting adds its next at rank 5,000, a tenant with none at rank 0, so a small job of
 * one tenant goes ahead of most of another tenant's big backlog, yet no tenant can starve another by
 * flooding (its own backlog ranks its chunks). BullMQ keeps FIFO order among equal priorities.
 *
 * A tenant's backlog is the set of its chunk job ids that have not ended, not a counter: a chunk added
 * twice (a resumed plan) or whose end is heard twice changes it once.
 */
export const RANKS_PER_PRIORITY = 2048;

// KEYS[1] the tenant's backlog set, KEYS[2] the chunk's BullMQ job hash, KEYS[3] the index of tenants;
// ARGV[1] chunk job id, ARGV[2] the tenant. Returns the backlog before the chunk joined it. A chunk that
// already ended (a plan resumed after its lock was lost, overlapping the first run) is not added: its end
// was heard already and will not be heard again. BullMQ sets finishedOn in the same script that moves a
// job to completed or failed, before its event. The tenant is indexed in the same step, so a non-empty
// backlog is always one the repair sweep walks.
const JOIN = `
local before = redis.call('SCARD', KEYS[1])
if redis.call('HEXISTS', KEYS[2], 'finishedOn') == 0 then redis.call('SADD', KEYS[1], ARGV[1]) end
redis.call('SADD', KEYS[3], ARGV[2])
return before`;

// KEYS[1] the tenant's backlog set, KEYS[2] the index of tenants; ARGV[1] the tenant. Atomic, so a chunk
// joining at the same moment keeps its tenant indexed.
const LEAVE_INDEX_IF_EMPTY = `
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end`;

// KEYS[1] the tenant's backlog set, KEYS[2] the chunk's BullMQ job hash; ARGV[1] chunk job id. The repair's
// removal: only while the chunk is still finished or still without a job, so a chunk added (or re-added)
// since the sweep looked at it stays counted. Returns 1 when the id left the set.
const LEAVE_IF_ENDED = `
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('HEXISTS', KEYS[2], 'finishedOn') == 1 then
  return redis.call('SREM', KEYS[1], ARGV[1])
end
return 0`;

/** The BullMQ priority (1 = first) of a job's own set job: its priority level's first rank. */
export function setJobPriority(priority: number | undefined): number {
  return ((priority ?? DEFAULT_PRIORITY) - 1) * RANKS_PER_PRIORITY + 1;
}

export class FairShare {
  constructor(
    private readonly redis: RedisClient,
    /** The key of a tenant's backlog set. */
    private readonly keyOf: (principal: string) => string,
    /** The key of a chunk's BullMQ job hash. */
    private readonly chunkKeyOf: (chunkId: string) => string,
    /** The set of tenants that have (or recently had) a backlog: what the repair sweep walks. */
    private readonly tenantsKey: string,
  ) {
    redis.defineCommand('detqFairJoin', { numberOfKeys: 3, lua: JOIN });
    redis.defineCommand('detqFairLeaveIndex', { numberOfKeys: 2, lua: LEAVE_INDEX_IF_EMPTY });
    redis.defineCommand('detqFairLeaveIfEnded', { numberOfKeys: 2, lua: LEAVE_IF_ENDED });
  }

  /**
   * Counts a new chunk in its tenant's backlog (unless it already ended) and returns the BullMQ priority
   * to add it with.
   */
  async chunkPriority(principal: string, chunkId: string, priority: number | undefined): Promise<number> {
    const join = (this.redis as unknown as Record<string, (...a: string[]) => Promise<number>>).detqFairJoin!;
    const backlog = await join.call(this.redis, this.keyOf(principal), this.chunkKeyOf(chunkId), this.tenantsKey, chunkId, principal);
    return setJobPriority(priority) + Math.min(backlog, RANKS_PER_PRIORITY - 1);
  }

  /** A chunk ended for good (done, failed after its last attempt, cancelled, or failed by BullMQ). */
  async chunkEnded(principal: string, chunkId: string): Promise<void> {
    await this.redis.srem(this.keyOf(principal), chunkId);
  }

  /**
   * The repair for ends whose removal never reached Redis (a worker that died just after BullMQ finished
   * its chunk, a reply lost after the commit, a chunk removed by hand): every indexed tenant's ids for
   * which `ended` says so leave its set. Returns the ids taken out.
   */
  async repair(ended: (chunkId: string) => Promise<boolean>): Promise<string[]> {
    const scripts = this.redis as unknown as Record<string, (...a: string[]) => Promise<number>>;
    const removed: string[] = [];
    for (const principal of await this.redis.smembers(this.tenantsKey)) {
      const key = this.keyOf(principal);
      for (const id of await this.redis.smembers(key))
        if ((await ended(id)) && (await scripts.detqFairLeaveIfEnded!.call(this.redis, key, this.chunkKeyOf(id), id)) === 1) removed.push(id);
      await scripts.detqFairLeaveIndex!.call(this.redis, key, this.tenantsKey, principal);
    }
    return removed;
  }

  /** Chunks of the tenant added and not ended. */
  backlog(principal: string): Promise<number> {
    return this.redis.scard(this.keyOf(principal));
  }

  /**
   * Takes each chunk out of its tenant's backlog when BullMQ ends it, from the chunk worker's own events
   * rather than from the processor: BullMQ fails a chunk stalled past its limit (its workers kept dying)
   * without running the processor, and an attempt whose lock was lost may end while the chunk runs
   * elsewhere; BullMQ refuses that attempt's outcome and emits no event for it.
   */
  followChunkEnds(worker: Worker<ChunkJobData>, onError: (err: Error) => void): void {
    const ended = (job: Job<ChunkJobData>) => void this.chunkEnded(job.data.principal ?? '', job.id!).catch(onError);
    worker.on('completed', ended);
    // Emitted for every failed attempt: BullMQ retries one unless it was the last or unrecoverable (a
    // cancel, a model that cannot load, BullMQ's own stall-limit failure).
    worker.on('failed', (job, err) => {
      if (job && (err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1))) ended(job);
    });
  }
}
