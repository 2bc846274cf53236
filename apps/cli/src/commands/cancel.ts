import type { Command } from 'commander';
import { FatalError } from '@detq/core';
import { withQueues } from '../queue-cli';

export function register(program: Command): void {
  program
    .command('cancel')
    .description('Cancel a distributed job: no new chunks start, running ones stop at their next progress write')
    .argument('<id>', 'job id')
    .action(async (id: string) => {
      const res = await withQueues((_q, jobs) => jobs.cancel(id));
      if (res === 'not_found') throw new FatalError('INPUT_NOT_FOUND', `no job ${id}`);
      process.stdout.write(res === 'cancelled' ? `${id} cancelled\n` : `${id} had already ended\n`);
    });
}
