import type { Command } from 'commander';
import { EXIT_CODES, FatalError } from '@detq/core';
import { resolveGpus, runSupervisor, runWorker, workerSettingsFromEnv } from '@detq/worker';

interface WorkerFlags {
  concurrency?: string;
  maxBatch?: string;
  maxWaitMs?: string;
  threads?: string;
  engine?: string;
  half?: boolean;
  device?: string;
  gpus?: string;
}

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
    .option('--device <n>', 'CUDA device of the GPU engine (env DETQ_DEVICE, default 0)')
    .option('--gpus <all|0,1,...>', 'run one worker process per GPU under a supervisor that restarts crashed ones and drains all on SIGTERM (env DETQ_GPUS)')
    .action(async (f: WorkerFlags) => {
      // Flags override the env so one definition of the defaults (workerSettingsFromEnv) holds.
      const env = {
        ...process.env,
        ...(f.concurrency && { DETQ_WORKER_CONCURRENCY: f.concurrency }),
        ...(f.maxBatch && { DETQ_MAX_BATCH: f.maxBatch }),
        ...(f.maxWaitMs && { DETQ_MAX_WAIT_MS: f.maxWaitMs }),
        ...(f.threads && { DETQ_THREADS: f.threads }),
        ...(f.engine && { DETQ_ENGINE: f.engine }),
        ...(f.half && { DETQ_HALF: 'true' }),
        ...(f.device && { DETQ_DEVICE: f.device }),
        ...(f.gpus && { DETQ_GPUS: f.gpus }),
      };
      const settings = workerSettingsFromEnv(env);
      if (!env.DETQ_GPUS) return runWorker(settings);
      if (f.device) throw new FatalError('USAGE', '--device and --gpus exclude each other: --gpus gives each worker its device');
      const devices = await resolveGpus(env.DETQ_GPUS);
      // The workers get the flags through the env, each its own --device.
      const code = await runSupervisor({ devices, command: [process.execPath, ...process.execArgv, process.argv[1]!, 'worker'], env });
      if (code === EXIT_CODES.USAGE) throw new FatalError('USAGE', 'a worker refused its settings (see its message above)');
      if (code !== 0) throw new FatalError('UNEXPECTED', `not every worker drained (supervisor exit ${code})`);
    });
}
