import { readFile } from 'node:fs/promises';
import { describeIssues, FatalError, jobSpecSchema, type JobSpec } from '@detq/core';
import { DetqQueues, JobClient, queueConfigFromEnv } from '@detq/queue';

/**
 * Shared by the queue commands (enqueue, status, watch, cancel, schedule): they talk to Redis directly
 * with REDIS_URL and DETQ_QUEUE_PREFIX, as trusted operators; remote users go through `detq api`.
 */
export async function withQueues<T>(fn: (queues: DetqQueues, jobs: JobClient) => Promise<T>): Promise<T> {
  const queues = new DetqQueues(queueConfigFromEnv());
  try {
    return await fn(queues, new JobClient(queues));
  } finally {
    await queues.close();
  }
}

/** Reads a JSON job spec from a file or `-` (stdin). */
export async function readJson(path: string): Promise<unknown> {
  const text = path === '-' ? await readStdin() : await readFile(path, 'utf8').catch((err: Error) => {
    throw new FatalError('USAGE', `cannot read spec ${path}: ${err.message}`);
  });
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FatalError('USAGE', `spec ${path} is not JSON: ${(err as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

/** Validates a spec; the message names every invalid field, as the API's 400 does. */
export function parseSpec(raw: unknown, what = 'job spec'): JobSpec {
  const parsed = jobSpecSchema.safeParse(raw);
  if (!parsed.success)
    throw new FatalError('USAGE', `invalid ${what}: ${describeIssues(parsed.error).map((f) => `${f.field}: ${f.message}`).join('; ')}`);
  return parsed.data;
}
