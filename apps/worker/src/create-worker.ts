import { hostname } from 'node:os';
import { Worker } from 'bullmq';
import {
  CHUNK_QUEUE,
  ChunkProcessor,
  ProgressReporter,
  connectRedis,
  DetqQueues,
  EnginePool,
  Finaliser,
  Planner,
  queueConfigFromEnv,
  Reconciler,
  SET_QUEUE,
  SetProcessor,
  webhookHostsFromEnv,
  type ChunkJobData,
  type QueueConfig,
  type SetJobData,
} from '@detq/queue';
import { RoutingStore, type ObjectStore } from '@detq/storage';
import { engineChoiceSchema, FatalError, type EngineChoice } from '@detq/core';

export interface WorkerSettings {
  queue: QueueConfig;
  /** Chunk jobs processed at once; their frames all meet in one batcher. */
  concurrency: number;
  maxBatch: number;
  maxWaitMs: number;
  /** ONNX Runtime intra-op threads (default: every core). */
  threads?: number;
  /** onnxruntime-cpu (default), torch, tensorrt or auto. */
  engine: EngineChoice;
  /** FP16 on the GPU engines. */
  half: boolean;
  /** Least time between two progress writes of a worker: progress costs O(time), not O(images). */
  progressIntervalMs: number;
  /** BullMQ lock: a killed worker's chunk is retried by another once it lapses. */
  lockDurationMs: number;
  /** Chunk attempts before the chunk is reported as failed. */
  attempts: number;
  webhookHosts: string[];
  /** How often batch statistics go to Redis for /metrics. */
  statsIntervalMs: number;
  /** How often the worker reconciles live jobs with BullMQ and drops expired ones from the index. */
  sweepIntervalMs: number;
}

function engineChoiceFromEnv(value: string | undefined): EngineChoice {
  const parsed = engineChoiceSchema.safeParse(value || 'onnxruntime-cpu');
  if (!parsed.success) throw new FatalError('USAGE', `DETQ_ENGINE / --engine: expected onnxruntime-cpu, torch, tensorrt or auto (got ${JSON.stringify(value)})`);
  return parsed.data;
}

const int = (v: string | undefined, fallback: number) => (v === undefined || v === '' ? fallback : Number.parseInt(v, 10));

export function workerSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerSettings {
  return {
    queue: queueConfigFromEnv(env),
    concurrency: int(env.DETQ_WORKER_CONCURRENCY, 2),
    maxBatch: int(env.DETQ_MAX_BATCH, 8),
    maxWaitMs: int(env.DETQ_MAX_WAIT_MS, 20),
    ...(env.DETQ_THREADS && { threads: int(env.DETQ_THREADS, 0) }),
    engine: engineChoiceFromEnv(env.DETQ_ENGINE),
    half: /^(1|true|yes)$/i.test(env.DETQ_HALF ?? ''),
    progressIntervalMs: int(env.DETQ_PROGRESS_MS, 5000),
    lockDurationMs: int(env.DETQ_LOCK_MS, 30_000),
    attempts: int(env.DETQ_CHUNK_ATTEMPTS, 5),
    webhookHosts: webhookHostsFromEnv(env),
    statsIntervalMs: int(env.DETQ_STATS_MS, 30_000),
    sweepIntervalMs: int(env.DETQ_SWEEP_MS, 60_000),
  };
}

export interface DetqWorker {
  readonly pool: EnginePool;
  readonly queues: DetqQueues;
  /** Drains: takes no new chunks, lets the active ones (and their batches) finish, then disposes the engines. */
  close(): Promise<void>;
}

/**
 * A `detq worker`: a BullMQ worker for chunk jobs and one for set jobs (planning and finalising), one
 * shared engine pool. The default model is loaded before any job is taken, so a bad model fails the
 * process at start instead of failing jobs.
 */
export async function createWorker(
  settings: WorkerSettings = workerSettingsFromEnv(),
  options: { store?: ObjectStore; log?: (line: string) => void } = {},
): Promise<DetqWorker> {
  const log = options.log ?? ((line: string) => console.error(line));
  const store = options.store ?? new RoutingStore();
  const pool = new EnginePool({
    store,
    maxBatch: settings.maxBatch,
    maxWaitMs: settings.maxWaitMs,
    ...(settings.threads && { threads: settings.threads }),
    engine: settings.engine,
    half: settings.half,
  });
  const rt = await pool.acquire();
  pool.release();
  log(`detq worker: ${rt.model.name} on ${rt.info.kind} (${rt.info.device}), concurrency ${settings.concurrency}`);

  const queues = new DetqQueues(settings.queue);
  const progress = new ProgressReporter(queues.jobs, settings.progressIntervalMs);
  const chunkProcessor = new ChunkProcessor({ store, pool, index: queues.index, progress });
  const setProcessor = new SetProcessor({
    jobs: queues.jobs,
    metrics: queues.metrics,
    planner: new Planner({ store, jobs: queues.jobs, chunks: queues.chunks, index: queues.index, attempts: settings.attempts }),
    finaliser: new Finaliser({ store, jobs: queues.jobs, chunks: queues.chunks }),
    pool,
    webhookHosts: settings.webhookHosts,
    log,
  });
  const common = {
    prefix: settings.queue.prefix,
    lockDuration: settings.lockDurationMs,
    stalledInterval: settings.lockDurationMs,
    // A chunk whose worker died twice is still retried once more before it counts as failed.
    maxStalledCount: 2,
    // An idle worker re-blocks every drainDelay seconds; new jobs wake it at once anyway, so a long
    // delay only saves Redis round trips.
    drainDelay: 30,
  };
  // BullMQ does not close connections it was given, so they are kept here and closed after the workers.
  const connections = [connectRedis(settings.queue.redisUrl), connectRedis(settings.queue.redisUrl)] as const;
  const chunkWorker = new Worker<ChunkJobData>(CHUNK_QUEUE, (job) => chunkProcessor.process(job), {
    ...common,
    connection: connections[0],
    concurrency: settings.concurrency,
  });
  const setWorker = new Worker<SetJobData>(SET_QUEUE, (job, token) => setProcessor.process(job, token), {
    ...common,
    // A set job is active only while planning or finalising: a slower stalled check costs little
    // recovery time and saves Redis round trips while its chunks run.
    stalledInterval: 2 * settings.lockDurationMs,
    connection: connections[1],
    concurrency: 2,
  });
  for (const w of [chunkWorker, setWorker]) {
    w.on('failed', (job, err) => log(`${w.name} job ${job?.id} failed (attempt ${job?.attemptsMade}): ${err.message}`));
    w.on('error', (err) => log(`${w.name} worker error: ${err.message}`));
  }
  // A set job BullMQ failed outside the processor (stall limit) must not stay `running` in detq's store.
  const reconciler = new Reconciler(queues);
  setWorker.on('failed', (job) => void reconciler.onSetFailed(job).catch((err: Error) => log(`reconcile ${job?.id}: ${err.message}`)));
  const sweeper = setInterval(() => void reconciler.sweep().catch((err: Error) => log(`sweep: ${err.message}`)), settings.sweepIntervalMs);
  sweeper.unref();
  const workerId = `${hostname()}:${process.pid}`;
  const report = async () => queues.metrics.reportWorker(workerId, { ...(await pool.stats()), at: Date.now() });
  const reporter = setInterval(() => void report().catch(() => undefined), settings.statsIntervalMs);
  reporter.unref();
  return {
    pool,
    queues,
    async close() {
      clearInterval(reporter);
      clearInterval(sweeper);
      await Promise.all([chunkWorker.close(), setWorker.close()]);
      await progress.close();
      await Promise.all(connections.map((c) => c.quit().catch(() => undefined)));
      await pool.close();
      await queues.close();
      if (store instanceof RoutingStore) store.close();
    },
  };
}
