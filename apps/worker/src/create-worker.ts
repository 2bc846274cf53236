import { hostname } from 'node:os';
import { Worker } from 'bullmq';
import {
  ABORT,
  checkRedisDurability,
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
  type SetProcessorDeps,
  type ChunkJobData,
  type QueueConfig,
  type SetJobData,
} from '@detq/queue';
import { RoutingStore, type ObjectStore } from '@detq/storage';
import { workerEngine } from './engine-cache';
import type { Engine } from '@detq/inference';
import { EngineFault, faultSettingsFromEnv, parseEnv, workerEnvSchema, type EngineChoice, type FaultSettings } from '@detq/core';

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
  /** CUDA device this worker's GPU engine runs on (`--device`, DETQ_DEVICE); one worker per GPU. */
  device?: number;
  /** Port of /healthz, /readyz and /metrics (DETQ_WORKER_PORT); none when unset. */
  healthPort?: number;
  /** Least time between two progress writes of a worker: progress costs O(time), not O(images). */
  progressIntervalMs: number;
  /** BullMQ lock: a killed worker's chunk is retried by another once it lapses. */
  lockDurationMs: number;
  /** Chunk attempts before the chunk is reported as failed. */
  attempts: number;
  webhooks: SetProcessorDeps['webhooks'];
  /** How often batch statistics go to Redis for /metrics. */
  statsIntervalMs: number;
  /** How often the worker reconciles live jobs with BullMQ and drops expired ones from the index. */
  sweepIntervalMs: number;
  /** Timeouts, outage budget, engine failure limit, drain deadline, volatile-Redis permission. */
  faults: FaultSettings;
}

/** The worker's settings from its env schema (@detq/core workerEnvSchema); throws EnvError (exit 2). */
export function workerSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerSettings {
  const e = parseEnv(workerEnvSchema, env);
  return {
    queue: queueConfigFromEnv(env),
    concurrency: e.DETQ_WORKER_CONCURRENCY,
    maxBatch: e.DETQ_MAX_BATCH,
    maxWaitMs: e.DETQ_MAX_WAIT_MS,
    ...(e.DETQ_THREADS && { threads: e.DETQ_THREADS }),
    engine: e.DETQ_ENGINE,
    half: e.DETQ_HALF,
    ...(e.DETQ_DEVICE !== undefined && { device: e.DETQ_DEVICE }),
    ...(e.DETQ_WORKER_PORT !== undefined && { healthPort: e.DETQ_WORKER_PORT }),
    progressIntervalMs: e.DETQ_PROGRESS_MS,
    lockDurationMs: e.DETQ_LOCK_MS,
    attempts: e.DETQ_CHUNK_ATTEMPTS,
    webhooks: { hosts: e.DETQ_WEBHOOK_HOSTS, allowPrivate: e.DETQ_WEBHOOK_ALLOW_PRIVATE, ...(e.DETQ_WEBHOOK_SECRET && { secret: e.DETQ_WEBHOOK_SECRET }) },
    statsIntervalMs: e.DETQ_STATS_MS,
    sweepIntervalMs: e.DETQ_SWEEP_MS,
    faults: faultSettingsFromEnv(env),
  };
}

/** BullMQ's stalled check runs at least this often, so a dead worker's chunks restart within lock + 15 s. */
export const MAX_STALLED_INTERVAL_MS = 15_000;

export interface CreateWorkerOptions {
  store?: ObjectStore;
  log?: (line: string) => void;
  /** Wraps every engine the worker opens (instrumentation; the fault tests inject engine failures here). */
  decorateEngine?: (engine: Engine) => Engine;
}

export interface DetqWorker {
  readonly pool: EnginePool;
  readonly queues: DetqQueues;
  /**
   * Settles when the worker gave up on its engine (DETQ_MAX_ENGINE_FAILURES chunks in a row failed by
   * engine faults): it has stopped taking work; the process should close it and exit non-zero.
   */
  readonly engineFailed: Promise<EngineFault>;
  /**
   * Drains: takes no new chunks, lets the active ones (and their batches) finish, then disposes the
   * engines. Chunks still running after the drain deadline are aborted and retried elsewhere.
   */
  close(): Promise<void>;
}

/**
 * A `detq worker`: a BullMQ worker for chunk jobs and one for set jobs (planning and finalising), one
 * shared engine pool. The default model is loaded before any job is taken, so a bad model fails the
 * process at start instead of failing jobs.
 */
export async function createWorker(
  settings: WorkerSettings = workerSettingsFromEnv(),
  options: CreateWorkerOptions = {},
): Promise<DetqWorker> {
  const log = options.log ?? ((line: string) => console.error(line));
  const { faults } = settings;
  const queues = new DetqQueues(settings.queue);
  try {
    for (const warning of await checkRedisDurability(queues.redis, faults.allowVolatileRedis)) log(`detq worker: ${warning}`);
  } catch (err) {
    await queues.close();
    throw err;
  }
  const store = options.store ?? new RoutingStore();
  // A TensorRT worker runs a plan built for its GPU: found in the node's engine cache, or built once.
  const defaultModel =
    settings.engine === 'tensorrt'
      ? await workerEngine({ device: settings.device ?? 0, half: settings.half, maxBatch: settings.maxBatch, store, log })
      : undefined;
  const pool = new EnginePool({
    store,
    maxBatch: settings.maxBatch,
    maxWaitMs: settings.maxWaitMs,
    ...(settings.threads && { threads: settings.threads }),
    engine: settings.engine,
    half: settings.half,
    ...(settings.device !== undefined && { device: settings.device }),
    ...(defaultModel && { defaultModel }),
    batchTimeoutMs: faults.batchTimeoutMs,
    ...(options.decorateEngine && { decorate: options.decorateEngine }),
  });
  const rt = await pool.acquire();
  pool.release();
  log(`detq worker: ${rt.model.name} on ${rt.info.kind} (${rt.info.device}), concurrency ${settings.concurrency}`);

  const progress = new ProgressReporter(queues.jobs, settings.progressIntervalMs);
  // A broken engine fails fast, so it would drain the queue fastest: after N chunks in a row failed by
  // engine faults the worker stops taking work and its supervisor restarts it.
  let consecutiveFaults = 0;
  let giveUp!: (fault: EngineFault) => void;
  const engineFailed = new Promise<EngineFault>((resolve) => (giveUp = resolve));
  const chunkProcessor = new ChunkProcessor({
    store,
    pool,
    index: queues.index,
    progress,
    chunkTimeoutMs: faults.chunkTimeoutMs,
    engineHealth: (fault) => {
      consecutiveFaults = fault ? consecutiveFaults + 1 : 0;
      if (fault && consecutiveFaults === faults.maxEngineFailures) {
        log(`detq worker: ${consecutiveFaults} chunks in a row failed by engine faults (last: ${fault.message}); taking no more work`);
        void chunkWorker.pause(true);
        void setWorker.pause(true);
        giveUp(fault);
      }
    },
  });
  const setProcessor = new SetProcessor({
    jobs: queues.jobs,
    metrics: queues.metrics,
    planner: new Planner({ store, jobs: queues.jobs, chunks: queues.chunks, index: queues.index, attempts: settings.attempts, fair: queues.fair }),
    finaliser: new Finaliser({ store, jobs: queues.jobs, chunks: queues.chunks }),
    pool,
    principals: queues.principals,
    webhooks: settings.webhooks,
    log,
  });
  const common = {
    prefix: settings.queue.prefix,
    lockDuration: settings.lockDurationMs,
    stalledInterval: Math.min(settings.lockDurationMs, MAX_STALLED_INTERVAL_MS),
    // A chunk whose worker died twice is still retried once more before it counts as failed.
    maxStalledCount: 2,
    // An idle worker re-blocks every drainDelay seconds; new jobs wake it at once anyway, so a long
    // delay only saves Redis round trips.
    drainDelay: 30,
  };
  // BullMQ does not close connections it was given, so they are kept here and closed after the workers.
  const connections = [connectRedis(settings.queue.redisUrl), connectRedis(settings.queue.redisUrl)] as const;
  let activeChunks = 0;
  // The processor takes BullMQ's AbortSignal (its third parameter is what makes BullMQ pass one).
  const chunkWorker = new Worker<ChunkJobData>(CHUNK_QUEUE, async (job, _token, signal) => {
    activeChunks++;
    try {
      return await chunkProcessor.process(job, signal);
    } finally {
      activeChunks--;
    }
  }, {
    ...common,
    connection: connections[0],
    concurrency: settings.concurrency,
  });
  queues.fair.followChunkEnds(chunkWorker, (err) => log(`fair share: ${err.message}`));
  // A lock that could not be renewed may already belong to another worker: stop labelling the chunk.
  chunkWorker.on('lockRenewalFailed', (ids) => {
    for (const id of ids) if (chunkWorker.cancelJob(id, ABORT.lockLost)) log(`detq worker: chunk ${id}: lock lost, stopped labelling it`);
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
  // One worker per GPU: the metrics of each (`worker` label) name its device.
  const workerId = `${hostname()}:${process.pid}${settings.device === undefined ? '' : `/gpu${settings.device}`}`;
  let last = { frames: 0, at: Date.now() };
  const report = async () => {
    const stats = { ...(await pool.stats()), at: Date.now() };
    const imagesPerSecond = stats.at > last.at ? Number((((stats.frames - last.frames) * 1000) / (stats.at - last.at)).toFixed(2)) : 0;
    last = stats;
    const identity = { model: rt.model.name, engine: rt.info.kind, device: rt.info.device };
    await queues.metrics.reportWorker(workerId, { ...stats, ...identity, activeChunks, imagesPerSecond });
  };
  const reporter = setInterval(() => void report().catch(() => undefined), settings.statsIntervalMs);
  reporter.unref();
  return {
    pool,
    queues,
    engineFailed,
    async close() {
      clearInterval(reporter);
      clearInterval(sweeper);
      // Chunks stuck past the drain deadline (e.g. waiting out an S3 outage) are aborted and retried elsewhere.
      const drain = setTimeout(() => chunkWorker.cancelAllJobs(ABORT.shutdown), faults.drainTimeoutMs);
      await Promise.all([chunkWorker.close(), setWorker.close()]);
      clearTimeout(drain);
      await progress.close();
      await Promise.all(connections.map((c) => c.quit().catch(() => undefined)));
      await pool.close();
      await queues.close();
      if (store instanceof RoutingStore) store.close();
    },
  };
}
