import { FatalError } from '@detq/core';
import type { RedisClient } from './config';

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

/**
 * detq keeps every job in Redis: a server that forgets on restart (no AOF, no RDB snapshots) or that
 * evicts keys under memory pressure loses jobs silently. Worker and API check the server they are
 * given before doing anything and refuse it (exit 2) unless told it is fine (DETQ_ALLOW_VOLATILE_REDIS=1).
 * Returns the warnings to log (a server whose snapshot config cannot be read is let through).
 */
export async function checkRedisDurability(redis: RedisClient, allowVolatile: boolean): Promise<string[]> {
  const [persistence, memory] = await Promise.all([redis.info('persistence'), redis.info('memory')]);
  const problems: string[] = [];
  const warnings: string[] = [];
  const policy = infoField(memory, 'maxmemory_policy');
  if (policy && policy !== 'noeviction')
    problems.push(`maxmemory-policy is ${policy}, so Redis may evict job keys under memory pressure (set it to noeviction)`);
  if (infoField(persistence, 'aof_enabled') !== '1') {
    // RDB snapshots: the schedule is only visible through CONFIG, which managed services may disable.
    const save = await redis.config('GET', 'save').then(
      (r) => String((r as string[])[1] ?? ''),
      () => undefined,
    );
    if (save === undefined) warnings.push('cannot read the Redis snapshot schedule (CONFIG GET save refused); make sure the server persists its data');
    else if (save.trim() === '') problems.push('it has no persistence (appendonly no, no save schedule), so a restart loses every job (enable appendonly yes)');
  }
  if (problems.length === 0) return warnings;
  const where = 'host' in redis.options ? `${redis.options.host}:${redis.options.port}` : 'the cluster';
  const why = `Redis at ${where} is not safe for detq: ${problems.join('; ')}`;
  if (!allowVolatile) throw new FatalError('USAGE', `${why}. Set DETQ_ALLOW_VOLATILE_REDIS=1 to start anyway.`);
  return [...warnings, `${why} (allowed by DETQ_ALLOW_VOLATILE_REDIS)`];
}
