import { Queue } from 'bullmq';
import { CHUNK_QUEUE, connectRedis, SET_QUEUE, type QueueConfig, type RedisClient } from './config';
import { IncrementalIndex } from './incremental-index';
import type { ChunkJobData, SetJobData } from './job-data';
import { JobStore } from './job-store';
import { MetricsStore } from './metrics-store';
import { FairShare } from './fair-share';
import { PrincipalStore } from './principal-store';

/** The Redis-side handles a process needs: both BullMQ queues and detq's own state, on one connection. */
export class DetqQueues {
  readonly sets: Queue<SetJobData>;
  readonly chunks: Queue<ChunkJobData>;
  readonly jobs: JobStore;
  readonly index: IncrementalIndex;
  readonly metrics: MetricsStore;
  readonly principals: PrincipalStore;
  readonly fair: FairShare;

  constructor(
    readonly config: QueueConfig,
    readonly redis: RedisClient = connectRedis(config.redisUrl),
  ) {
    // BullMQ's event streams are capped (10,000 events by default): 1,000 keeps Redis memory flat sooner;
    // detq reads job state from its own store, not from these streams.
    const opts = { connection: redis, prefix: config.prefix, streams: { events: { maxLen: 1000 } } };
    this.sets = new Queue<SetJobData>(SET_QUEUE, opts);
    this.chunks = new Queue<ChunkJobData>(CHUNK_QUEUE, opts);
    this.jobs = new JobStore(redis, config.prefix, config.jobTtlSeconds);
    this.index = new IncrementalIndex(redis, config.prefix);
    this.metrics = new MetricsStore(redis, this.jobs);
    this.principals = new PrincipalStore(redis, this.jobs.key('principals'));
    this.fair = new FairShare(
      redis,
      (principal) => this.jobs.key('backlog', principal),
      (chunkId) => this.chunks.toKey(chunkId),
      this.jobs.key('backlog-tenants'),
    );
  }

  async close(): Promise<void> {
    await Promise.all([this.sets.close(), this.chunks.close()]);
    await this.redis.quit().catch(() => undefined);
  }
}
