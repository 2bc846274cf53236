import type { Command } from 'commander';
import { describeIssues, FatalError, scheduleSpecSchema } from '@detq/core';
import { ScheduleClient } from '@detq/queue';
import { readJson, withQueues } from '../queue-cli';

export function register(program: Command): void {
  const schedule = program.command('schedule').description('Nightly pipelines: job specs run on a cron schedule');
  schedule
    .command('add')
    .description('Add or replace a schedule (an incremental spec labels only new or changed images each run)')
    .argument('<spec>', 'JSON job spec file, or - for stdin')
    .requiredOption('--cron <pattern>', 'cron pattern, e.g. "0 2 * * *"')
    .requiredOption('--id <id>', 'schedule id (adding the same id replaces it)')
    .option('--tz <zone>', 'IANA time zone of the pattern')
    .option('--incremental', 'skip images already labelled with the same model and params')
    .action(async (file: string, f: { cron: string; id: string; tz?: string; incremental?: boolean }) => {
      const spec = (await readJson(file)) as Record<string, unknown>;
      const parsed = scheduleSpecSchema.safeParse({
        id: f.id,
        cron: f.cron,
        ...(f.tz && { tz: f.tz }),
        spec: f.incremental ? { ...spec, incremental: true } : spec,
      });
      if (!parsed.success)
        throw new FatalError('USAGE', `invalid schedule: ${describeIssues(parsed.error).map((i) => `${i.field}: ${i.message}`).join('; ')}`);
      const view = await withQueues((q) => new ScheduleClient(q).add(parsed.data)).catch((err: Error) => {
        throw new FatalError('USAGE', err.message);
      });
      process.stdout.write(`${view.id} ${view.cron}${view.next ? ` next ${view.next}` : ''}\n`);
    });
  schedule
    .command('list')
    .description('List schedules')
    .action(async () => {
      for (const s of await withQueues((q) => new ScheduleClient(q).list()))
        process.stdout.write(`${s.id}\t${s.cron}${s.tz ? ` (${s.tz})` : ''}\t${s.next ?? ''}\n`);
    });
  schedule
    .command('remove')
    .description('Remove a schedule')
    .argument('<id>', 'schedule id')
    .action(async (id: string) => {
      if (!(await withQueues((q) => new ScheduleClient(q).remove(id)))) throw new FatalError('INPUT_NOT_FOUND', `no schedule ${id}`);
      process.stdout.write(`${id} removed\n`);
    });
}
