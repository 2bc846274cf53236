import type { Command } from 'commander';
import { runApi } from '@detq/api';

export function register(program: Command): void {
  program
    .command('api')
    .description('Serve the enqueue API (tokens from $DETQ_API_TOKENS_FILE) until SIGTERM')
    .option('--port <n>', 'port (env DETQ_API_PORT, default 8080)')
    .action(async (f: { port?: string }) => {
      await runApi({ ...process.env, ...(f.port && { DETQ_API_PORT: f.port }) });
    });
}
