import { Redis, type RedisOptions } from 'ioredis';

/** Where a deployment's queues live. Every key detq or BullMQ writes starts with `prefix`. */
export interface QueueConfig {
  redisUrl: string;
  /**
   * Isolates deployments and tests. A Redis Cluster hash tag such as `{detq}` puts every key in one
   * slot, which BullMQ's multi-key scripts and flows across the two queues need.
   */
  prefix: string;
  /** How long a job's state (and its BullMQ set job) is kept after it ends; default 7 days. */
  jobTtlSeconds?: number;
}

/** `DETQ_JOB_TTL`: seconds, or a number with s, m, h or d (`7d`). */
export function parseDuration(value: string, what: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!m) throw new Error(`${what}: expected seconds or a number with s, m, h or d (got ${JSON.stringify(value)})`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

export function queueConfigFromEnv(env: NodeJS.ProcessEnv = process.env): QueueConfig {
  return {
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    prefix: env.DETQ_QUEUE_PREFIX ?? 'detq',
    ...(env.DETQ_JOB_TTL && { jobTtlSeconds: parseDuration(env.DETQ_JOB_TTL, 'DETQ_JOB_TTL') }),
  };
}

/** The BullMQ queue of image-set jobs (planner + finaliser) and the queue of their chunk jobs. */
export const SET_QUEUE = 'sets';
export const CHUNK_QUEUE = 'chunks';

/**
 * A Redis connection usable by BullMQ workers too: commands wait for a reconnect instead of failing
 * after a few retries, so a Redis restart pauses work rather than failing jobs.
 */
export function connectRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, ...options });
}
