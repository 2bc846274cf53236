import { createWorker, workerSettingsFromEnv, type WorkerSettings } from './create-worker';
import { WorkerHealthServer } from './health-server';

/**
 * Runs a worker until SIGTERM/SIGINT, then drains (no new chunks, in-flight batches and chunks finish)
 * and resolves, so the process can exit 0. A second signal exits at once.
 */
export async function runWorker(settings: WorkerSettings = workerSettingsFromEnv()): Promise<void> {
  // Up before the model loads, so a long engine build reads as "starting", not as a dead process.
  const health =
    settings.healthPort === undefined
      ? undefined
      : await WorkerHealthServer.listen(settings.healthPort, { ...(settings.device !== undefined && { device: settings.device }) });
  const worker = await createWorker(settings);
  health?.ready(worker);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      console.error(`detq worker: ${signal}, draining`);
      health?.drain();
      process.once(signal, () => process.exit(130));
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await worker.close();
  await health?.close();
  console.error('detq worker: drained');
}
