import { createWorker, workerSettingsFromEnv, type WorkerSettings } from './create-worker';

/**
 * Runs a worker until SIGTERM/SIGINT, then drains (no new chunks, in-flight batches and chunks finish)
 * and resolves, so the process can exit 0. A second signal exits at once.
 */
export async function runWorker(settings: WorkerSettings = workerSettingsFromEnv()): Promise<void> {
  const worker = await createWorker(settings);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      console.error(`detq worker: ${signal}, draining`);
      process.once(signal, () => process.exit(130));
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await worker.close();
  console.error('detq worker: drained');
}
