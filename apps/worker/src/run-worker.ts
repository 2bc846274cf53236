import { FatalError } from '@detq/core';
import { createWorker, workerSettingsFromEnv, type CreateWorkerOptions, type WorkerSettings } from './create-worker';
import { WorkerHealthServer } from './health-server';

/**
 * Runs a worker until SIGTERM/SIGINT, then drains (no new chunks, in-flight batches and chunks finish)
 * and resolves, so the process can exit 0. A second signal exits at once. A worker whose engine keeps
 * failing drains too, then fails with ENGINE_UNAVAILABLE (exit 6) so its supervisor restarts it.
 */
export async function runWorker(settings: WorkerSettings = workerSettingsFromEnv(), options: CreateWorkerOptions = {}): Promise<void> {
  // Up before the model loads, so a long engine build reads as "starting", not as a dead process.
  const health =
    settings.healthPort === undefined
      ? undefined
      : await WorkerHealthServer.listen(settings.healthPort, { ...(settings.device !== undefined && { device: settings.device }) });
  const worker = await createWorker(settings, options);
  health?.ready(worker);
  const ended = await new Promise<{ signal: string } | { fault: Error }>((resolve) => {
    const stop = (signal: string) => {
      console.error(`detq worker: ${signal}, draining`);
      health?.drain();
      process.once(signal, () => process.exit(130));
      resolve({ signal });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    void worker.engineFailed.then((fault) => resolve({ fault }));
  });
  await worker.close();
  await health?.close();
  if ('fault' in ended) throw new FatalError('ENGINE_UNAVAILABLE', `the engine keeps failing, worker stopped: ${ended.fault.message}`);
  console.error('detq worker: drained');
}
