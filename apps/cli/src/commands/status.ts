import type { Command } from 'commander';
import { FatalError } from '@detq/core';
import type { JobView } from '@detq/queue';
import { withQueues } from '../queue-cli';

export function describeJob(v: JobView): string {
  const pct = v.progress === null ? 'planning' : `${(v.progress * 100).toFixed(1)}%`;
  return (
    `${v.id} ${v.status} ${v.counts.done}/${v.counts.total} (${pct}) ${v.counts.failed} failed, ` +
    `${v.imagesPerSecond} img/s${v.eta ? `, ETA ${v.eta}s` : ''} -> ${v.output}${v.error ? ` (${v.error})` : ''}`
  );
}

export function register(program: Command): void {
  program
    .command('status')
    .description('Show a distributed job: status, counts, img/s, ETA')
    .argument('<id>', 'job id')
    .option('--json', 'print the job as JSON')
    .action(async (id: string, f: { json?: boolean }) => {
      const view = await withQueues((_q, jobs) => jobs.view(id));
      if (!view) throw new FatalError('INPUT_NOT_FOUND', `no job ${id}`);
      process.stdout.write(f.json ? `${JSON.stringify(view, null, 2)}\n` : `${describeJob(view)}\n`);
    });
}
