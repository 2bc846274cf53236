import type { RedisClient } from './config';
import { DEFAULT_PRIORITY } from '@detq/core';

/**
 * Chunk order across tenants, through BullMQ priorities. BullMQ serves jobs without a priority before
 * every prioritised one, and lower numbers first; detq gives every job a priority so `priority: 1`
 * is served first whatever BullMQ's encoding.
 *
 * Within one priority level, a chunk's rank is its tenant's backlog when it is added: a tenant with
 * 5,000 chunks waiting adds its next at rank 5,000, a tenant with none at rank 0, so a small job of
 * one tenant goes ahead of most of another tenant's big backlog, yet no tenant can starve another by
 * flooding (its own backlog ranks its chunks). BullMQ keeps FIFO order among equal priorities.
 */
export const RANKS_PER_PRIORITY = 2048;

// KEYS[1] backlog hash; ARGV[1] principal, ARGV[2] +1 (chunk added) or -1 (chunk ended). Returns the backlog before.
const ADJUST = `
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local after = before + tonumber(ARGV[2])
if after <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], after) end
return before`;

/** The BullMQ priority (1 = first) of a job's own set job: its priority level's first rank. */
export function setJobPriority(priority: number | undefined): number {
  return ((priority ?? DEFAULT_PRIORITY) - 1) * RANKS_PER_PRIORITY + 1;
}

export class FairShare {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
  ) {
    redis.defineCommand('detqFairAdjust', { numberOfKeys: 1, lua: ADJUST });
  }

  private adjust(principal: string, by: 1 | -1): Promise<number> {
    const cmd = (this.redis as unknown as Record<string, (...a: string[]) => Promise<number>>).detqFairAdjust!;
    return cmd.call(this.redis, this.key, principal, String(by));
  }

  /** Counts a new chunk in its tenant's backlog and returns the BullMQ priority to add it with. */
  async chunkPriority(principal: string, priority: number | undefined): Promise<number> {
    const backlog = await this.adjust(principal, 1);
    return setJobPriority(priority) + Math.min(backlog, RANKS_PER_PRIORITY - 1);
  }

  /** A chunk ended for good (done, failed after its last attempt, or cancelled). */
  async chunkEnded(principal: string): Promise<void> {
    await this.adjust(principal, -1);
  }
}
