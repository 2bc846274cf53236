import { z } from 'zod';
import { FatalError } from './errors';
import { engineChoiceSchema } from './schemas';

/**
 * Process settings from the environment: one zod schema per process (api, worker), checked once at
 * start. A bad value stops the process with exit code 2 and a line naming the variable and what it
 * must be (EnvError). To add a setting, add one line to the shape of the process that reads it.
 */

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const bool = z
  .string()
  .regex(/^(1|0|true|false|yes|no)$/i, 'must be 1/0, true/false or yes/no')
  .transform((v) => /^(1|true|yes)$/i.test(v));
const list = z.string().transform((v) =>
  v
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean),
);

const UNIT_SECONDS = { '': 1, s: 1, m: 60, h: 3600, d: 86400 } as const;
/** Seconds, or a number with s, m, h or d (`7d`); parsed to seconds. */
const duration = z
  .string()
  .regex(/^\d+[smhd]?$/, 'must be seconds or a number with s, m, h or d (e.g. 7d)')
  .transform((v) => Number(v.replace(/[smhd]$/, '')) * UNIT_SECONDS[(v.match(/[smhd]$/)?.[0] ?? '') as keyof typeof UNIT_SECONDS]);

/** Settings both processes read: where the queues live and what webhooks may call. */
export const queueEnvShape = {
  REDIS_URL: z.string().regex(/^rediss?(\+cluster)?:\/\//, 'must be a redis://, rediss:// or redis+cluster:// URL').default('redis://127.0.0.1:6379'),
  DETQ_QUEUE_PREFIX: z.string().min(1).max(64).default('detq'),
  /** How long a job's state is kept after it ends. */
  DETQ_JOB_TTL: duration.default(7 * 86400),
  /** Hosts webhooks may call, comma-separated; none by default. */
  DETQ_WEBHOOK_HOSTS: list.default([]),
  /** Let webhooks reach loopback, private and link-local addresses (tests, in-cluster receivers). */
  DETQ_WEBHOOK_ALLOW_PRIVATE: bool.default(false),
};

/** The queue settings alone, for processes that only talk to the queues (the CLI's queue commands). */
export const queueEnvSchema = z.object(queueEnvShape);

/** Per-job caps an admin sets (per token in the tokens file; these are the deployment defaults). */
export const capsEnvShape = {
  DETQ_MAX_IMGSZ: int(32, 4096).default(1280),
  DETQ_MAX_IMAGES: int(1).default(10_000_000),
  DETQ_MAX_OBJECT_BYTES: int(1).default(64 * 1024 * 1024),
};

export const apiEnvSchema = z.object({
  ...queueEnvShape,
  ...capsEnvShape,
  DETQ_API_TOKENS_FILE: z.string({ error: 'must be set (create entries with `detq token create`)' }).min(1),
  DETQ_API_PORT: int(0, 65535).default(8080),
  DETQ_API_HOST: z.string().min(1).default('0.0.0.0'),
  DETQ_API_BODY_LIMIT: int(1024).default(1024 * 1024),
  /** Serve /metrics on this port without a token instead of on the API port behind a `metrics` token. */
  DETQ_METRICS_PORT: int(1, 65535).optional(),
  /** Signs webhooks of jobs enqueued without a token (the CLI); token jobs use the token's webhookSecret. */
  DETQ_WEBHOOK_SECRET: z.string().min(16).optional(),
  /** Requests per second per token. */
  DETQ_RATE_LIMIT: int(1).default(20),
  /** Images a token may have queued or running at once (summed over its unfinished jobs). */
  DETQ_MAX_QUEUED_IMAGES: int(1).default(5_000_000),
  /** Unfinished jobs a token may have at once. */
  DETQ_MAX_ACTIVE_JOBS: int(1).default(100),
  /** Least time between two runs of a schedule. */
  DETQ_MIN_SCHEDULE_INTERVAL_S: int(1).default(60),
});
export type ApiEnv = z.infer<typeof apiEnvSchema>;

export const workerEnvSchema = z.object({
  ...queueEnvShape,
  DETQ_WORKER_CONCURRENCY: int(1, 256).default(2),
  DETQ_MAX_BATCH: int(1, 256).default(8),
  DETQ_MAX_WAIT_MS: int(0, 60_000).default(20),
  DETQ_THREADS: int(1, 256).optional(),
  DETQ_ENGINE: engineChoiceSchema.default('onnxruntime-cpu'),
  DETQ_HALF: bool.default(false),
  /** The CUDA device this worker uses (`detq worker --gpus` sets it per child). */
  DETQ_DEVICE: int(0, 1023).optional(),
  /** Port of the worker's /healthz, /readyz and /metrics; none when unset. */
  DETQ_WORKER_PORT: int(0, 65535).optional(),
  DETQ_PROGRESS_MS: int(10).default(5000),
  DETQ_LOCK_MS: int(1000).default(30_000),
  DETQ_CHUNK_ATTEMPTS: int(1, 100).default(5),
  DETQ_STATS_MS: int(100).default(30_000),
  /** How often a worker reconciles live jobs with BullMQ and drops expired jobs from the index. */
  DETQ_SWEEP_MS: int(100).default(60_000),
  /** Signs webhooks of jobs enqueued without a token (the CLI); token jobs use the token's webhookSecret. */
  DETQ_WEBHOOK_SECRET: z.string().min(16).optional(),
});
export type WorkerEnv = z.infer<typeof workerEnvSchema>;

/** How a GPU engine spreads its work, read once where engines are created (createEngine), before any loads. */
export const gpuEnvSchema = z.object({
  /**
   * Execution contexts per GPU engine (each a thread, streams and a JPEG decoder). Unset: 1 from batch 32
   * up, else 2, at most a TensorRT plan's profiles (gpuSettings).
   */
  DETQ_GPU_CONTEXTS: int(1, 8).optional(),
  /**
   * Batches each context keeps on the device while it stages and decodes the next: its staging slots.
   * Unset: 3 with one context (the addon's batchesPerContext), 2 with several, whether the contexts were
   * set or chosen (gpuSettings). At most the addon's maxBatchesPerContext (Pipeline::kMaxSlots),
   * checked here so a bad value is refused with the others before any engine loads.
   */
  DETQ_GPU_BATCHES_PER_CONTEXT: int(1, 4).optional(),
});
export type GpuEnv = z.infer<typeof gpuEnvSchema>;

/** A bad environment (exit 2): `message` has one line per variable, `DETQ_X: must be … (got "…")`. */
export class EnvError extends FatalError {
  constructor(
    readonly variables: string[],
    message: string,
  ) {
    super('USAGE', message);
    this.name = 'EnvError';
  }
}

/** Parses the env with a process's schema; empty strings count as unset. Throws EnvError. */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => {
    const name = String(i.path[0] ?? '(env)');
    const got = present[name];
    return { name, line: `${name}: ${i.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)})`}` };
  });
  throw new EnvError(lines.map((l) => l.name), lines.map((l) => l.line).join('\n'));
}
