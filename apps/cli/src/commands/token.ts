import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FatalError } from '@detq/core';
import { createToken } from '@detq/api';

export function register(program: Command): void {
  const token = program.command('token').description('API bearer tokens');
  token
    .command('create')
    .description('Print a new token and its DETQ_API_TOKENS_FILE entry (the file keeps only the sha256)')
    .requiredOption('--name <name>', 'who the token is for')
    .requiredOption('--scope <pattern...>', 's3:// patterns the token may read and write, e.g. s3://in/* s3://out/team-a/*')
    .option('--file <path>', 'also append the entry to this tokens file')
    .action((f: { name: string; scope: string[]; file?: string }) => {
      let created: ReturnType<typeof createToken>;
      try {
        created = createToken(f.name, f.scope);
      } catch (err) {
        throw new FatalError('USAGE', `--scope: every scope is an s3:// pattern (${(err as Error).message})`);
      }
      if (f.file) {
        const entries = existsSync(f.file) ? (JSON.parse(readFileSync(f.file, 'utf8')) as unknown[]) : [];
        writeFileSync(f.file, `${JSON.stringify([...entries, created.entry], null, 2)}\n`, { mode: 0o600 });
      }
      process.stdout.write(`token: ${created.token}\nentry: ${JSON.stringify(created.entry)}\n`);
    });
}
