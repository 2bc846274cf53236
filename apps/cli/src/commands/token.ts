import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FatalError, roleSchema, type Role } from '@detq/core';
import { createToken, revokeToken } from '@detq/api';

export function register(program: Command): void {
  const token = program.command('token').description('API bearer tokens');
  token
    .command('create')
    .description('Print a new token and its DETQ_API_TOKENS_FILE entry (the file keeps only the sha256)')
    .requiredOption('--name <name>', 'who the token is for')
    .requiredOption('--scope <pattern...>', 's3:// patterns the token may read and write, e.g. s3://in/* s3://out/team-a/*')
    .option('--role <role...>', 'admin (sees and cancels every tenant\'s jobs) and/or metrics (reads /metrics)')
    .option('--file <path>', 'also append the entry to this tokens file')
    .action((f: { name: string; scope: string[]; role?: string[]; file?: string }) => {
      let created: ReturnType<typeof createToken>;
      const roles = (f.role ?? []).map((r) => {
        const parsed = roleSchema.safeParse(r);
        if (!parsed.success) throw new FatalError('USAGE', `--role: one of ${roleSchema.options.join(', ')} (got ${JSON.stringify(r)})`);
        return parsed.data as Role;
      });
      try {
        created = createToken(f.name, f.scope, roles);
      } catch (err) {
        throw new FatalError('USAGE', `--name/--scope: ${(err as Error).message}`);
      }
      if (f.file) {
        const entries = existsSync(f.file) ? (JSON.parse(readFileSync(f.file, 'utf8')) as unknown[]) : [];
        writeFileSync(f.file, `${JSON.stringify([...entries, created.entry], null, 2)}\n`, { mode: 0o600 });
      }
      process.stdout.write(`token: ${created.token}\nwebhook secret: ${created.entry.webhookSecret}\nentry: ${JSON.stringify(created.entry)}\n`);
    });
  token
    .command('revoke')
    .description('Remove a token from the tokens file; a running `detq api` reloads the file within a second (or on SIGHUP)')
    .requiredOption('--name <name>', 'the token to revoke')
    .requiredOption('--file <path>', 'the tokens file (DETQ_API_TOKENS_FILE)')
    .action((f: { name: string; file: string }) => {
      if (!existsSync(f.file)) throw new FatalError('INPUT_NOT_FOUND', `no tokens file ${f.file}`);
      if (!revokeToken(f.file, f.name)) throw new FatalError('INPUT_NOT_FOUND', `no token named ${f.name} in ${f.file}`);
      process.stdout.write(`${f.name} revoked\n`);
    });
}
