import { DetqQueues, JobClient, type QueueConfig } from '@detq/queue';
import { S3Store, s3ConfigFromEnv, type ObjectStore } from '@detq/storage';
import { createWorker, workerSettingsFromEnv, type DetqWorker, type WorkerSettings } from '@detq/worker';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { dropPrefix } from './helpers';

/** An s3rver, a worker running in the test's own process against it, and the producer side of the queue. */
export interface InProcessWorker {
  s3: TestS3Server;
  store: S3Store;
  worker: DetqWorker;
  queues: DetqQueues;
  client: JobClient;
  /** Stops all of it and deletes the queue prefix's keys. */
  stop(): Promise<void>;
}

/**
 * Starts them on `config`'s prefix. `wrapStore` puts a fault-injecting store between the worker and S3
 * (without it the worker reads S3 through its own store, from the environment).
 * The shared test Redis may run without persistence; durability has its own test (worker-faults).
 */
export async function startInProcessWorker(
  config: QueueConfig,
  settings: Partial<WorkerSettings> = {},
  wrapStore?: (store: S3Store) => ObjectStore,
): Promise<InProcessWorker> {
  const s3 = await startS3Server();
  Object.assign(process.env, s3.env);
  const store = new S3Store(s3ConfigFromEnv(s3.env));
  const worker = await createWorker(
    { ...workerSettingsFromEnv({ DETQ_ALLOW_VOLATILE_REDIS: '1' }), queue: config, threads: 2, progressIntervalMs: 200, ...settings },
    { ...(wrapStore && { store: wrapStore(store) }), log: () => {} },
  );
  const queues = new DetqQueues(config);
  return {
    s3,
    store,
    worker,
    queues,
    client: new JobClient(queues),
    async stop() {
      await worker.close();
      await queues.close();
      await dropPrefix(config.prefix);
      store.destroy();
      await s3.stop();
    },
  };
}
