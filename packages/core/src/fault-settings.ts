import { z } from 'zod';
import { FatalError } from './errors';

/**
 * Timeouts, outage budgets and failure limits of the worker, the API and their S3 clients (with the
 * clients' connection pool), read from the environment. Kept apart from the other settings so one
 * process schema can absorb them whole.
 */
const ms = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const flag = z
  .string()
  .optional()
  .transform((v) => /^(1|true|yes)$/i.test(v ?? ''));

export const faultEnvSchema = z.object({
  /** Longest a TCP connect to S3 may take. */
  DETQ_S3_CONNECT_TIMEOUT_MS: ms(5_000),
  /** Longest an S3 request may wait for its response headers (uploads: until the body is sent). */
  DETQ_S3_REQUEST_TIMEOUT_MS: ms(60_000),
  /** Longest an S3 socket may stay silent, e.g. mid-body. */
  DETQ_S3_SOCKET_TIMEOUT_MS: ms(30_000),
  /**
   * Connections one S3 client keeps open at most (kept alive between requests). A GPU worker reads a few
   * thousand COCO-size objects a second, ~70 GETs in flight at 30 ms each (apps/worker/README.md); the
   * SDK's default of 50 would queue them.
   */
  DETQ_S3_MAX_SOCKETS: z.coerce.number().int().min(1).max(4096).default(256),
  /** How long transient S3 failures (refused, reset, 5xx, throttling, timeouts) are retried before an image, chunk or finalisation gives up. */
  DETQ_S3_OUTAGE_BUDGET_MS: ms(10 * 60_000),
  /** Longest one engine call (one batch) may take before the engine is declared broken. */
  DETQ_BATCH_TIMEOUT_MS: ms(120_000),
  /** Longest one chunk may run before it is aborted and retried; above the outage budget so an outage is waited out first. */
  DETQ_CHUNK_TIMEOUT_MS: ms(30 * 60_000),
  /** Consecutive chunks failed by engine faults after which a worker stops taking work and exits 6. */
  DETQ_MAX_ENGINE_FAILURES: z.coerce.number().int().positive().default(3),
  /** On SIGTERM, how long active chunks may take to finish before they are aborted (and retried elsewhere). */
  DETQ_DRAIN_TIMEOUT_MS: ms(120_000),
  /** Start against a Redis without persistence or with an evicting maxmemory-policy (jobs can be lost). */
  DETQ_ALLOW_VOLATILE_REDIS: flag,
});

export interface FaultSettings {
  s3: { connectTimeoutMs: number; requestTimeoutMs: number; socketTimeoutMs: number; outageBudgetMs: number; maxSockets: number };
  batchTimeoutMs: number;
  chunkTimeoutMs: number;
  maxEngineFailures: number;
  drainTimeoutMs: number;
  allowVolatileRedis: boolean;
}

/** Parses the fault settings; a bad value names its variable. */
export function faultSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): FaultSettings {
  const parsed = faultEnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FatalError('USAGE', `${issue.path.join('.')}: ${issue.message}`);
  }
  const e = parsed.data;
  return {
    s3: {
      connectTimeoutMs: e.DETQ_S3_CONNECT_TIMEOUT_MS,
      requestTimeoutMs: e.DETQ_S3_REQUEST_TIMEOUT_MS,
      socketTimeoutMs: e.DETQ_S3_SOCKET_TIMEOUT_MS,
      outageBudgetMs: e.DETQ_S3_OUTAGE_BUDGET_MS,
      maxSockets: e.DETQ_S3_MAX_SOCKETS,
    },
    batchTimeoutMs: e.DETQ_BATCH_TIMEOUT_MS,
    chunkTimeoutMs: e.DETQ_CHUNK_TIMEOUT_MS,
    maxEngineFailures: e.DETQ_MAX_ENGINE_FAILURES,
    drainTimeoutMs: e.DETQ_DRAIN_TIMEOUT_MS,
    allowVolatileRedis: e.DETQ_ALLOW_VOLATILE_REDIS,
  };
}
