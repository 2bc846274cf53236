import { Redis, type RedisOptions } from 'ioredis';

/** Where a deployment's queues live. Every key detq or BullMQ writes starts with `prefix`. */
export interface QueueConfig {
  redisUrl: string;
  /**
   * Isolates deployments and tests. A Redis Cluster hash tag such as `{detq}` puts every key in one
   * slot, which BullMQ's multi-key scripts and flows across the two queues need.
   */
  prefix: string;
}

export function queueConfigFromEnv(env: NodeJS.ProcessEnv = process.env): QueueConfig {
  return {
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    prefix: env.DETQ_QUEUE_PREFIX ?? 'detq',
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

/**
 * A producer's connection (API, CLI), BullMQ's recommended producer settings: no offline queue and
 * one retry, so a command fails at once while Redis is unreachable instead of hanging the request,
 * and the connection keeps reconnecting by itself.
 */
export function connectProducerRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 100, 1000),
    ...options,
  });
}
