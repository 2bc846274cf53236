import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobSpecSchema } from '@detq/core';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { dropPrefix, testQueueConfig, waitFor, waitForEnd, type Manifest } from './helpers';
import { expectEveryKeyOnce, uploadSpreadSet } from './fault-scenario';
import { kill, start, workerReady, type Proc } from './procs';

const OUTAGE_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * S3 outages against real worker processes. Each scenario is its own deployment (queue prefix, worker,
 * fault proxy in front of the one s3rver), so the scenarios run at once and the two 60 s outages overlap.
 */
describe.concurrent('S3 faults: refused for 60 s mid-job and while finalising, black-holed', () => {
  let s3: TestS3Server;
  let store: S3Store;
  const procs: Proc[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    s3 = await startS3Server();
    store = new S3Store(s3ConfigFromEnv(s3.env));
  });

  afterAll(async () => {
    for (const p of procs) kill(p);
    for (const c of cleanups) await c().catch(() => undefined);
    store?.destroy();
    await s3?.stop();
  });

  /** A deployment whose workers reach S3 only through a fault proxy. */
  const deployment = async (extraEnv: Record<string, string> = {}) => {
    const config = testQueueConfig();
    const queues = new DetqQueues(config);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    cleanups.push(async () => {
      await queues.close();
      await dropPrefix(config.prefix);
      await proxy.close();
    });
    const env = {
      ...process.env,
      ...s3.env,
      S3_ENDPOINT: proxy.endpoint,
      REDIS_URL: config.redisUrl,
      DETQ_QUEUE_PREFIX: config.prefix,
      DETQ_ALLOW_VOLATILE_REDIS: '1',
      DETQ_THREADS: '1',
      DETQ_LOCK_MS: '4000',
      DETQ_PROGRESS_MS: '250',
      ...extraEnv,
    };
    const worker = () => {
      const p = start(['worker'], env);
      procs.push(p);
      return p;
    };
    return { queues, client: new JobClient(queues), proxy, worker };
  };
  const spec = (name: string) =>
    jobSpecSchema.parse({ input: { uri: `s3://in/${name}/` }, output: { uri: `s3://out/${name}/`, formats: ['jsonl'] }, chunkSize: 4 });
  const outage = async (proxy: FaultProxy, ms: number) => {
    await sleep(ms);
    expect(proxy.mode()).not.toBe('pass');
    await proxy.set('pass');
  };

  it('S3 refused for 60 s mid-job: the job completes with every image labelled', async () => {
    const { client, proxy, worker } = await deployment();
    const set = await uploadSpreadSet(store, 's3://in/s3mid/', 16);
    const w = worker();
    await workerReady(w);
    const refused = proxy.when(/GET \/in\/s3mid\//, 'refuse', 8);
    const { id } = await client.enqueue(spec('s3mid'));
    await refused;
    await outage(proxy, OUTAGE_MS);
    const view = await waitForEnd(client, id, 240_000);
    expect(view.status, w.output()).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: set.keys.length, done: set.keys.length, failed: 8 });
    await expectEveryKeyOnce(store, 's3://out/s3mid/', set);
  }, 400_000);

  it('S3 refused for 60 s while finalising: the job completes with its outputs', async () => {
    const { client, proxy, worker } = await deployment();
    const set = await uploadSpreadSet(store, 's3://in/s3fin/', 16);
    const w = worker();
    await workerReady(w);
    // Only the finaliser reads chunk results back.
    const refused = proxy.when(/GET \/out\/s3fin\/\S*chunks\//, 'refuse');
    const { id } = await client.enqueue(spec('s3fin'));
    await refused;
    await outage(proxy, OUTAGE_MS);
    const view = await waitForEnd(client, id, 240_000);
    expect(view.status, w.output()).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: set.keys.length, done: set.keys.length, failed: 8 });
    await expectEveryKeyOnce(store, 's3://out/s3fin/', set);
  }, 400_000);

  it('S3 black-holed: SIGTERM drains, chunks time out and are retried, the job completes after recovery; cancel frees the slots', async () => {
    const { queues, client, proxy, worker } = await deployment({
      DETQ_S3_CONNECT_TIMEOUT_MS: '2000',
      DETQ_S3_REQUEST_TIMEOUT_MS: '3000',
      DETQ_S3_SOCKET_TIMEOUT_MS: '3000',
      DETQ_CHUNK_TIMEOUT_MS: '20000',
      DETQ_DRAIN_TIMEOUT_MS: '3000',
    });
    const set = await uploadSpreadSet(store, 's3://in/bh/', 16);
    const first = worker();
    let second: Proc | undefined;
    // On a failure, the workers' logs say which step stuck.
    const logs = () => `first worker:\n${first.output()}\nsecond worker:\n${second?.output() ?? ''}`;
    try {
      await workerReady(first);
      const holed = proxy.when(/GET \/in\/bh\//, 'blackhole', 8);
      const { id } = await client.enqueue(spec('bh'));
      await holed;
      await waitFor('chunks stuck on the black hole', async () => ((await queues.chunks.getActiveCount()) > 0 ? true : undefined));
      // Draining cannot wait for S3 forever: past the drain deadline the stuck chunks are handed back.
      first.child.kill('SIGTERM');
      const drained = await Promise.race([first.exited, sleep(90_000).then(() => ({ code: 'still running after 90 s' }))]);
      expect(drained.code, first.output()).toBe(0);
      expect(first.output()).toContain('drained');

      const w2 = worker();
      second = w2;
      await workerReady(w2);
      // Longer than the chunk deadline: the chunks the second worker takes time out and go back to the queue.
      await waitFor('a chunk to miss its deadline', async () => (/chunk deadline of 20000 ms exceeded/.test(w2.output()) ? true : undefined), 120_000);
      await proxy.set('pass');
      const view = await waitForEnd(client, id, 180_000);
      expect(view.status, w2.output()).toBe('completed_with_errors');
      expect(view.counts).toEqual({ total: set.keys.length, done: set.keys.length, failed: 8 });
      await expectEveryKeyOnce(store, 's3://out/bh/', set);

      // Cancel while S3 is black-holed: the stuck chunks stop at once and free the worker's slots.
      const small = await uploadSpreadSet(store, 's3://in/bh-cancel/', 8);
      const holedAgain = proxy.when(/GET \/in\/bh-cancel\//, 'blackhole', 2);
      const cancelled = await client.enqueue(spec('bh-cancel'));
      await holedAgain;
      await waitFor('chunks stuck on the black hole', async () => ((await queues.chunks.getActiveCount()) > 0 ? true : undefined));
      // Cancel during planning is another story (issue 7's plan half): cancel once the plan is recorded.
      await waitFor('planning to end', async () => ((await client.view(cancelled.id))?.status === 'running' ? true : undefined));
      expect(await client.cancel(cancelled.id)).toBe('cancelled');
      await waitFor('the slots to be freed', async () => ((await queues.chunks.getActiveCount()) === 0 ? true : undefined), 60_000);
      expect(proxy.mode()).toBe('blackhole');
      await proxy.set('pass');
      const summary = await waitFor('the cancelled job to be finalised', async () => {
        const body = await store.get('s3://out/bh-cancel/summary.json').catch(() => undefined);
        return body && (JSON.parse(body.toString()) as { status: string });
      }, 120_000);
      expect(summary.status).toBe('cancelled');
      const manifest = JSON.parse((await store.get('s3://out/bh-cancel/manifest.json')).toString()) as Manifest;
      expect(manifest.images.map((i) => i.key).sort()).toEqual(small.keys);
      for (const e of manifest.images) if (!(e.key in small.bad)) expect([undefined, 'CANCELLED'], e.key).toContain(e.error?.code);
      w2.child.kill('SIGTERM');
      expect((await w2.exited).code).toBe(0);
    } catch (err) {
      console.error(logs());
      throw err;
    }
  }, 560_000);

  it('a chunk whose lock is lost stops (BullMQ lockRenewalFailed -> AbortSignal) and is labelled once by its next owner', async () => {
    const { queues, client, proxy, worker } = await deployment();
    const set = await uploadSpreadSet(store, 's3://in/lock/', 16);
    const w = worker();
    await workerReady(w);
    // The black hole keeps the chunks active while their locks are taken away.
    const holed = proxy.when(/GET \/in\/lock\//, 'blackhole', 2);
    const { id } = await client.enqueue(spec('lock'));
    await holed;
    const active = await waitFor('chunks stuck on the black hole', async () => {
      const jobs = await queues.chunks.getActive();
      return jobs.length > 0 ? jobs : undefined;
    });
    await queues.redis.del(...active.map((j) => `${queues.config.prefix}:chunks:${j.id}:lock`));
    await waitFor('the worker to stop the chunks', async () => (/lock lost, stopped labelling it/.test(w.output()) ? true : undefined), 60_000);
    await proxy.set('pass');
    const view = await waitForEnd(client, id, 240_000);
    expect(view.status, w.output()).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: set.keys.length, done: set.keys.length, failed: 8 });
    await expectEveryKeyOnce(store, 's3://out/lock/', set);
  }, 400_000);
});
