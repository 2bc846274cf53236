import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '@detq/api';
import { jobSpecSchema, REPO_ROOT } from '@detq/core';
import { DetqQueues, JobClient, type QueueConfig } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { tempDir } from '../helpers/fixtures';
import { dropPrefix, testQueueConfig, waitFor, waitForEnd } from './helpers';
import { expectEveryKeyOnce, uploadSpreadSet } from './fault-scenario';
import { freePort, kill, start, startNode, startRedis, workerReady, type PrivateRedis, type Proc } from './procs';

const FAULT_WORKER = join(REPO_ROOT, 'test/distributed/fault-worker.ts');

describe('worker faults: a broken engine, a Redis restart, a Redis that cannot keep jobs', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let dir: string;
  const procs: Proc[] = [];
  const redises: PrivateRedis[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const baseEnv = () => ({
    ...process.env,
    ...s3.env,
    DETQ_THREADS: '1',
    DETQ_LOCK_MS: '4000',
    DETQ_PROGRESS_MS: '250',
    DETQ_STATS_MS: '500',
  });
  const track = (p: Proc) => (procs.push(p), p);
  const deployment = (config: QueueConfig) => {
    const queues = new DetqQueues(config);
    cleanups.push(() => queues.close());
    return { queues, client: new JobClient(queues) };
  };
  const spec = (name: string) =>
    jobSpecSchema.parse({ input: { uri: `s3://in/${name}/` }, output: { uri: `s3://out/${name}/`, formats: ['jsonl'] }, chunkSize: 4 });

  beforeAll(async () => {
    s3 = await startS3Server();
    store = new S3Store(s3ConfigFromEnv(s3.env));
    dir = await tempDir('detq-faults-');
  });

  afterAll(async () => {
    for (const p of procs) kill(p);
    for (const c of cleanups) await c().catch(() => undefined);
    for (const r of redises) await r.destroy();
    store?.destroy();
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('an engine that fails after 2 batches: its worker exits 6, its chunks are retried on a healthy worker, no INFERENCE_FAILED', async () => {
    const config = testQueueConfig();
    cleanups.push(() => dropPrefix(config.prefix));
    const { queues, client } = deployment(config);
    const env = { ...baseEnv(), REDIS_URL: config.redisUrl, DETQ_QUEUE_PREFIX: config.prefix, DETQ_ALLOW_VOLATILE_REDIS: '1' };
    const set = await uploadSpreadSet(store, 's3://in/engine/', 24);
    const faulty = track(startNode(['--import', 'tsx', FAULT_WORKER], { ...env, DETQ_TEST_ENGINE_OK_BATCHES: '2', DETQ_MAX_ENGINE_FAILURES: '2' }));
    await workerReady(faulty);
    const { id } = await client.enqueue(spec('engine'));
    const stopped = await faulty.exited;
    expect(stopped.code, faulty.output()).toBe(6);
    expect(faulty.output()).toContain('2 chunks in a row failed by engine faults');

    const healthy = track(start(['worker'], env));
    const view = await waitForEnd(client, id, 180_000);
    expect(view.status, healthy.output()).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: set.keys.length, done: set.keys.length, failed: 8 });
    await expectEveryKeyOnce(store, 's3://out/engine/', set);
    const chunks = (await queues.chunks.getJobs(['completed'])).filter((j) => j.data.setId === id);
    expect(chunks.filter((j) => j.attemptsMade > 0).length).toBeGreaterThanOrEqual(2);
    healthy.child.kill('SIGTERM');
    expect((await healthy.exited).code).toBe(0);
  }, 300_000);

  it('Redis (AOF) restarted mid-job for longer than a lock: the job completes, nothing lost or counted twice', async () => {
    const redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--save', '']);
    redises.push(redis);
    const config = { redisUrl: redis.url, prefix: '{detq}' };
    const { queues, client } = deployment(config);
    // Refused while Redis is down; commands wait for the reconnect.
    queues.redis.on('error', () => undefined);
    for (const emitter of [queues.sets, queues.chunks]) emitter.on('error', () => undefined);
    // No DETQ_ALLOW_VOLATILE_REDIS: this Redis persists, so the worker accepts it.
    const env = { ...baseEnv(), REDIS_URL: redis.url, DETQ_QUEUE_PREFIX: config.prefix, DETQ_ALLOW_VOLATILE_REDIS: '' };
    const set = await uploadSpreadSet(store, 's3://in/restart/', 24);
    const worker = track(start(['worker'], env));
    await workerReady(worker);
    const { id } = await client.enqueue(spec('restart'));
    await waitFor('the first images to be done', async () => (((await client.view(id))?.counts.done ?? 0) > 0 ? true : undefined));
    await redis.stop();
    await new Promise((r) => setTimeout(r, 8000)); // twice the lock: every lock held at the stop has lapsed
    await redis.restart();
    const view = await waitForEnd(client, id, 180_000);
    expect(view.status, worker.output()).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: set.keys.length, done: set.keys.length, failed: 8 });
    await expectEveryKeyOnce(store, 's3://out/restart/', set);
    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  }, 300_000);

  it('a Redis without persistence or with eviction: worker and API refuse to start (exit 2) and say why', async () => {
    const volatile = await startRedis(['--save', '', '--appendonly', 'no']);
    const evicting = await startRedis(['--appendonly', 'yes', '--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru']);
    redises.push(volatile, evicting);
    const tokens = join(dir, 'tokens.json');
    await writeFile(tokens, JSON.stringify([createToken('ci', ['s3://in/*']).entry]));
    const env = { ...baseEnv(), DETQ_QUEUE_PREFIX: '{detq}', DETQ_ALLOW_VOLATILE_REDIS: '', DETQ_API_TOKENS_FILE: tokens, DETQ_API_PORT: String(await freePort()), DETQ_API_HOST: '127.0.0.1' };
    const runs = [
      { args: ['worker'], redis: volatile, why: /no persistence/ },
      { args: ['api'], redis: volatile, why: /no persistence/ },
      { args: ['worker'], redis: evicting, why: /maxmemory-policy is allkeys-lru/ },
    ];
    for (const run of runs) {
      const p = track(start(run.args, { ...env, REDIS_URL: run.redis.url }));
      expect((await p.exited).code, p.output()).toBe(2);
      expect(p.output()).toMatch(run.why);
      expect(p.output()).toContain('DETQ_ALLOW_VOLATILE_REDIS=1');
    }
    // Allowed explicitly, it starts (and says what it was allowed).
    const allowed = track(start(['worker'], { ...env, REDIS_URL: volatile.url, DETQ_ALLOW_VOLATILE_REDIS: '1' }));
    await workerReady(allowed);
    expect(allowed.output()).toContain('allowed by DETQ_ALLOW_VOLATILE_REDIS');
    allowed.child.kill('SIGTERM');
    expect((await allowed.exited).code).toBe(0);
  }, 120_000);
});
