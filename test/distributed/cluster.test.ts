import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '@detq/api';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { cocoImageNames, tempDir } from '../helpers/fixtures';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { badFiles, freePort, startDetq, testQueueConfig, uploadSet, waitFor, waitForEnd, type DetqProcess, type Manifest } from './helpers';

// The processes scenario (detq api + two detq workers, real S3 protocol) on a 3-master Redis Cluster,
// as managed Redis offers at scale: every key carries the prefix's hash tag, so all of a deployment
// sits in one slot, and the clients follow that slot from a seed node that does not own it.
describe('processes on a 3-master Redis Cluster (redis+cluster:// URL, hash-tagged prefix)', () => {
  let cluster: TestRedisCluster;
  let s3: TestS3Server;
  let store: S3Store;
  let queues: DetqQueues;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let base: string;
  let keys: string[];
  let slot: number;
  let owner: number;
  const { prefix } = testQueueConfig();
  const token = createToken('ci', ['s3://in/*', 's3://out/*']);
  const bad = Object.fromEntries(Object.entries(badFiles()).slice(0, 2));
  const procs: DetqProcess[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    slot = Number(cluster.cli(cluster.ports[0]!, 'cluster', 'keyslot', prefix));
    owner = cluster.ownerOf(slot);
    const seed = cluster.ports.find((p) => p !== owner)!;
    const redisUrl = `redis+cluster://127.0.0.1:${seed}`;
    s3 = await startS3Server();
    Object.assign(process.env, s3.env);
    store = new S3Store(s3ConfigFromEnv(s3.env));
    keys = await uploadSet(store, 's3://in/set/', cocoImageNames().slice(0, 24), bad);
    dir = await tempDir('detq-cluster-');
    const tokensFile = join(dir, 'tokens.json');
    await writeFile(tokensFile, JSON.stringify([token.entry]));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = {
      ...process.env,
      ...s3.env,
      REDIS_URL: redisUrl,
      // The test's Redis is a throwaway one: no persistence needed (worker-faults.test.ts proves the refusal).
      DETQ_ALLOW_VOLATILE_REDIS: '1',
      DETQ_QUEUE_PREFIX: prefix,
      DETQ_API_TOKENS_FILE: tokensFile,
      DETQ_API_PORT: String(port),
      DETQ_API_HOST: '127.0.0.1',
      DETQ_THREADS: '1',
      DETQ_PROGRESS_MS: '250',
    };
    queues = new DetqQueues({ redisUrl, prefix });
    procs.push(startDetq(['api'], env));
    await waitFor('the API', async () => ((await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
  }, 120_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await queues?.close();
    store?.destroy();
    await s3?.stop();
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('two workers label a 26-image set: every image exactly once, all keys in the prefix slot, SIGTERM exits 0', async () => {
    const workers = [startDetq(['worker'], env), startDetq(['worker'], env)];
    procs.push(...workers);
    for (const w of workers) await waitFor('a worker to load its model', async () => (/detq worker: .* concurrency/.test(w.output()) ? true : undefined), 90_000);
    const res = await fetch(`${base}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { uri: 's3://in/set/' }, output: { uri: 's3://out/set/', formats: ['jsonl', 'coco'] }, chunkSize: 4 }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };

    const view = await waitForEnd(new JobClient(queues), id, 180_000);
    expect(view.status).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: 26, done: 26, failed: 2 });
    const manifest = JSON.parse((await store.get('s3://out/set/manifest.json')).toString()) as Manifest;
    expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
    expect(manifest.images.filter((i) => i.error).map((i) => i.key).sort()).toEqual(Object.keys(bad).sort());
    const records = (await store.get('s3://out/set/detections.jsonl')).toString().trim().split('\n');
    expect(records.map((l) => (JSON.parse(l) as { key: string }).key).sort()).toEqual(keys);

    // Everything detq and BullMQ wrote is in the prefix's slot, on the master that owns it.
    const inSlot = Number(cluster.cli(owner, 'cluster', 'countkeysinslot', String(slot)));
    expect(inSlot).toBeGreaterThan(0);
    for (const port of cluster.ports) expect(Number(cluster.cli(port, 'dbsize')), `keys on ${port}`).toBe(port === owner ? inSlot : 0);

    for (const w of workers) w.child.kill('SIGTERM');
    for (const w of workers) expect((await w.exited).code, w.output()).toBe(0);
  }, 300_000);
});
