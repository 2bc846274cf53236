import type { Command } from 'commander';
import { FatalError, TERMINAL_STATUSES } from '@detq/core';
import type { JobView } from '@detq/queue';
import { ProgressBar } from '../progress-bar';
import { withQueues } from '../queue-cli';
import { describeJob } from './status';

export function register(program: Command): void {
  program
    .command('watch')
    .description('Follow a distributed job with a progress bar until it ends (exit 0 when it completed)')
    .argument('<id>', 'job id')
    .option('--interval <ms>', 'poll interval', '1000')
    .action(async (id: string, f: { interval: string }) => {
      const interval = Number(f.interval);
      if (!(interval >= 50)) throw new FatalError('USAGE', '--interval must be at least 50 ms');
      const final = await withQueues(async (_q, jobs) => {
        const bar = new ProgressBar();
        let last = '';
        for (;;) {
          const v: JobView | undefined = await jobs.view(id);
          if (!v) throw new FatalError('INPUT_NOT_FOUND', `no job ${id}`);
          const started = v.startedAt ? Date.parse(v.startedAt) : Date.now();
          bar.update({ done: v.counts.done, ...(v.progress !== null && { total: v.counts.total }), errors: v.counts.failed, elapsedMs: Date.now() - started }, true);
          // Off a TTY (logs, CI) one line per change instead of a redrawn bar.
          const line = describeJob(v);
          if (!process.stderr.isTTY && line !== last) process.stderr.write(`${line}\n`);
          last = line;
          if (TERMINAL_STATUSES.includes(v.status)) {
            bar.done();
            return v;
          }
          await new Promise((r) => setTimeout(r, interval));
        }
      });
      process.stdout.write(`${describeJob(final)}\n`);
      if (final.status === 'failed' || final.status === 'cancelled') throw new FatalError('UNEXPECTED', `job ${id} ${final.status}`);
    });
}
