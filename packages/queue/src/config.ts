import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { parseEnv, queueEnvSchema } from '@detq/core';

/** A Redis server or a Redis Cluster (REDIS_URL `redis+cluster://host:port[,host:port...]`). */
export type RedisClient = Redis | Cluster;

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

/** Where the queues live, from the env (REDIS_URL, DETQ_QUEUE_PREFIX, DETQ_JOB_TTL); EnvError (exit 2) on a bad value. */
export function queueConfigFromEnv(env: NodeJS.ProcessEnv = process.env): QueueConfig {
  const e = parseEnv(queueEnvSchema, env);
  return { redisUrl: e.REDIS_URL, prefix: e.DETQ_QUEUE_PREFIX, jobTtlSeconds: e.DETQ_JOB_TTL };
}

/** The BullMQ queue of image-set jobs (planner + finaliser) and the queue of their chunk jobs. */
export const SET_QUEUE = 'sets';
export const CHUNK_QUEUE = 'chunks';

/** `redis[s]+cluster://[user[:password]@]host:port[,host:port...]`: seed nodes of a Redis Cluster. */
const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)/;

/**
 * A Redis connection usable by BullMQ workers too: commands wait for a reconnect instead of failing
 * after a few retries, so a Redis restart pauses work rather than failing jobs. A cluster URL names
 * seed nodes of a Redis Cluster; the client finds the other nodes and follows slot moves. Every detq
 * key carries the prefix's hash tag, so a deployment lives in one slot (one shard).
 */
export function connectRedis(url: string, options: RedisOptions = {}): RedisClient {
  return connect(url, { maxRetriesPerRequest: null, enableReadyCheck: true, ...options });
}

/** A Redis server or, for a cluster URL, a Redis Cluster client whose nodes use the given options. */
function connect(url: string, redisOptions: RedisOptions, clusterOptions: ClusterOptions = {}): RedisClient {
  const cluster = CLUSTER_URL.exec(url);
  if (!cluster) return new Redis(url, redisOptions);
  const [, scheme, username, password, hosts] = cluster;
  const seeds = hosts!.split(',').map((hostPort) => {
    const [host, port] = hostPort.split(':');
    return { host: host!, port: Number(port || 6379) };
  });
  return new Cluster(seeds, {
    ...clusterOptions,
    redisOptions: {
      ...redisOptions,
      ...(username && { username: decodeURIComponent(username) }),
      ...(password && { password: decodeURIComponent(password) }),
      ...(scheme === 'rediss' && { tls: {} }),
    },
  });
}

/**
 * A producer's connection (API, CLI), BullMQ's recommended producer settings: no offline queue and
 * one retry, so a command fails at once while Redis is unreachable instead of hanging the request,
 * and the connection keeps reconnecting by itself.
 */
export function connectProducerRedis(url: string, options: RedisOptions = {}): RedisClient {
  const producer: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 100, 1000),
    ...options,
  };
  return connect(url, producer, { enableOfflineQueue: false, clusterRetryStrategy: (times) => Math.min(times * 100, 1000) });
}
