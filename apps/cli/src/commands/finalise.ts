import type { Command } from 'commander';
import { FatalError } from '@detq/core';
import { Finaliser } from '@detq/queue';
import { RoutingStore } from '@detq/storage';
import { withQueues } from '../queue-cli';

export function register(program: Command): void {
  program
    .command('finalise')
    .alias('finalize')
    .description(
      'Write a distributed job\'s outputs again from its plan and chunk results (after a finaliser died or a job failed with every image done); its images are not labelled again',
    )
    .argument('<id>', 'job id')
    .option('--json', 'print the summary as JSON')
    .action(async (id: string, f: { json?: boolean }) => {
      const summary = await withQueues(async (queues) => {
        const state = await queues.jobs.get(id);
        if (!state) throw new FatalError('INPUT_NOT_FOUND', `no job ${id} (it may have expired)`);
        if (!state.planned) throw new FatalError('USAGE', `job ${id} is still being planned: a worker finalises it when its chunks end`);
        const queued = await queues.sets.getJobState(id);
        if (queued === 'waiting-children') throw new FatalError('USAGE', `job ${id} still has chunks running: a worker finalises it when they end`);
        const store = new RoutingStore();
        try {
          return await new Finaliser({ store, jobs: queues.jobs, chunks: queues.chunks }).finalise(id);
        } finally {
          store.close();
        }
      });
      process.stdout.write(
        f.json ? `${JSON.stringify(summary, null, 2)}\n` : `${id} ${summary.status}: ${summary.counts.total} images, ${summary.counts.failed} failed -> ${summary.output}manifest.json\n`,
      );
    });
}
