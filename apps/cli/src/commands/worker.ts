import type { Command } from 'commander';
import { runWorker, workerSettingsFromEnv } from '@detq/worker';

export function register(program: Command): void {
  program
    .command('worker')
    .description('Run a distributed labelling worker until SIGTERM (which drains, then exits 0); exits 6 when its engine keeps failing, 2 when Redis cannot keep jobs')
    .option('--concurrency <n>', 'chunk jobs at once (env DETQ_WORKER_CONCURRENCY, default 2)')
    .option('--max-batch <n>', 'frames per engine call (env DETQ_MAX_BATCH, default 8)')
    .option('--max-wait-ms <n>', 'how long a partial batch waits (env DETQ_MAX_WAIT_MS, default 20)')
    .option('--threads <n>', 'inference threads (env DETQ_THREADS, default all cores)')
    .option('--engine <engine>', 'onnxruntime-cpu | torch | tensorrt | auto (env DETQ_ENGINE, default onnxruntime-cpu)')
    .option('--half', 'FP16 on GPU engines (env DETQ_HALF)')
    .action(async (f: { concurrency?: string; maxBatch?: string; maxWaitMs?: string; threads?: string; engine?: string; half?: boolean }) => {
      // Flags override the env so one definition of the defaults (workerSettingsFromEnv) holds.
      const env = {
        ...process.env,
        ...(f.concurrency && { DETQ_WORKER_CONCURRENCY: f.concurrency }),
        ...(f.maxBatch && { DETQ_MAX_BATCH: f.maxBatch }),
        ...(f.maxWaitMs && { DETQ_MAX_WAIT_MS: f.maxWaitMs }),
        ...(f.threads && { DETQ_THREADS: f.threads }),
        ...(f.engine && { DETQ_ENGINE: f.engine }),
        ...(f.half && { DETQ_HALF: 'true' }),
      };
      await runWorker(workerSettingsFromEnv(env));
    });
}
