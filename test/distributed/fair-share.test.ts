import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobSpecSchema } from '@detq/core';
import { chunkJobId, DetqQueues, JobClient, setJobPriority, type PrincipalRecord } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { cocoImageNames } from '../helpers/fixtures';
import { uploadSet, waitFor, waitForEnd, type Manifest } from './helpers';
import { kill, start, startRedis, workerReady, type PrivateRedis, type Proc } from './procs';

const tenant: PrincipalRecord = { scopes: ['s3://in/*', 's3://out/*'], roles: [], caps: { maxImgsz: 1280, maxImages: 10_000, maxObjectBytes: 64 << 20 } };

/**
 * A tenant's fair-share backlog (the rank its next chunk is added at) against real worker processes: it
 * must come back to exactly what is still unfinished however a chunk ends, or the tenant is ranked
 * behind the others for good.
 */
describe('fair share: a chunk leaves its tenant\'s backlog exactly once, when it really ends', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let redis: PrivateRedis;
  let queues: DetqQueues;
  let client: JobClient;
  let env: NodeJS.ProcessEnv;
  const procs: Proc[] = [];
  const proxies: FaultProxy[] = [];
  const worker = (extra: NodeJS.ProcessEnv = {}) => {
    const p = start(['worker'], { ...env, ...extra });
    procs.push(p);
    return p;
  };
  const proxy = async () => {
    const p = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    proxies.push(p);
    return p;
  };
  const enqueue = async (name: string, principal: string) =>
    (await client.enqueue(jobSpecSchema.parse({ input: { uri: `s3://in/${name}/` }, output: { uri: `s3://out/${name}/` } }), { principal })).id;
  /** Resolves once the chunk is active for the nth time (BullMQ counts every start, stalled ones too). */
  const startedTimes = (chunk: string, n: number) =>
    waitFor(`chunk ${chunk} to start ${n} times`, async () => {
      const job = await queues.chunks.getJob(chunk);
      return job && job.attemptsStarted === n && (await job.getState()) === 'active' ? job : undefined;
    }, 120_000);

  beforeAll(async () => {
    s3 = await startS3Server();
    store = new S3Store(s3ConfigFromEnv(s3.env));
    redis = await startRedis(['--save', '', '--appendonly', 'no']);
    const config = { redisUrl: redis.url, prefix: '{detq}' };
    queues = new DetqQueues(config);
    client = new JobClient(queues);
    // One tenant per test: each starts with an empty backlog.
    await queues.principals.replaceAll(new Map(['alice', 'bob', 'dave', 'erin', 'frank'].map((p) => [p, tenant])));
    env = {
      ...process.env,
      ...s3.env,
      REDIS_URL: redis.url,
      DETQ_QUEUE_PREFIX: config.prefix,
      // A throwaway Redis: durability has its own test (worker-faults).
      DETQ_ALLOW_VOLATILE_REDIS: '1',
      DETQ_THREADS: '1',
      // Short locks: a dead worker's chunk is taken back within seconds (stalled check every 4 s).
      DETQ_LOCK_MS: '4000',
      DETQ_PROGRESS_MS: '250',
    };
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) kill(p);
    for (const p of proxies) await p.close();
    await queues?.close();
    await redis?.destroy();
    store?.destroy();
    await s3?.stop();
  });

  it('a chunk counts once however often it is added, and leaves once however often its end is reported', async () => {
    // A second worker's connection: both hear of the same chunks.
    const other = new DetqQueues(queues.config);
    try {
      const first = setJobPriority(undefined);
      expect(await queues.fair.chunkPriority('carol', 'j-c00000', undefined)).toBe(first);
      expect(await queues.fair.chunkPriority('carol', 'j-c00001', undefined)).toBe(first + 1);
      // A resumed plan adds its last chunk again.
      await other.fair.chunkPriority('carol', 'j-c00001', undefined);
      expect(await queues.fair.backlog('carol')).toBe(2);
      // Two reports of chunk 0's end at once (two workers, or a failed chunk retried by hand that ends again).
      await Promise.all([queues.fair.chunkEnded('carol', 'j-c00000'), other.fair.chunkEnded('carol', 'j-c00000')]);
      expect(await queues.fair.backlog('carol')).toBe(1);
      await other.fair.chunkEnded('carol', 'j-c00001');
      expect(await queues.fair.backlog('carol')).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('a chunk whose worker is SIGKILLed mid-chunk three times is failed by BullMQ (stall limit) and leaves the backlog', async () => {
    await uploadSet(store, 's3://in/stall/', cocoImageNames(2));
    // Workers reach S3 through a proxy that black-holes the first image read and everything after it:
    // each of them is stuck mid-chunk until it is killed.
    const holes = await proxy();
    void holes.when(/GET \/in\/stall\//, 'blackhole');
    const stuck = { S3_ENDPOINT: holes.endpoint };
    const first = worker(stuck);
    await workerReady(first);
    const id = await enqueue('stall', 'alice');
    const chunk = chunkJobId(id, 0);
    // BullMQ fails a chunk stalled more than maxStalledCount (2) times: its worker died three times.
    for (let n = 1; n <= 3; n++) {
      const w = n === 1 ? first : worker(stuck);
      await startedTimes(chunk, n);
      expect(await queues.fair.backlog('alice')).toBe(1);
      kill(w);
      expect((await w.exited).signal).toBe('SIGKILL');
    }
    // A healthy worker finds the chunk over the limit: BullMQ fails it without running the processor.
    const last = worker();
    const view = await waitForEnd(client, id, 120_000);
    expect(view.status, last.output()).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: 2, done: 2, failed: 2 });
    const job = (await queues.chunks.getJob(chunk))!;
    expect([await job.getState(), job.failedReason, job.stalledCounter]).toEqual(['failed', 'job stalled more than allowable limit', 3]);
    const manifest = JSON.parse((await store.get('s3://out/stall/manifest.json')).toString()) as Manifest;
    expect(manifest.images.map((i) => i.error)).toEqual(Array(2).fill({ code: 'CHUNK_FAILED', message: 'job stalled more than allowable limit' }));
    // Drained: whatever the worker had sent to Redis has been answered.
    last.child.kill('SIGTERM');
    expect((await last.exited).code, last.output()).toBe(0);
    expect(await queues.fair.backlog('alice')).toBe(0);
  }, 300_000);

  it('a lost lock on the last attempt ends nothing: the chunk stays in the backlog until it completes', async () => {
    await uploadSet(store, 's3://in/lost/', cocoImageNames(2));
    const holes = await proxy();
    void holes.when(/GET \/in\/lost\//, 'blackhole');
    // One attempt, so the attempt that loses its lock is the last; short S3 timeouts, so reads retry soon
    // once the black hole is lifted.
    const w = worker({ S3_ENDPOINT: holes.endpoint, DETQ_CHUNK_ATTEMPTS: '1', DETQ_S3_REQUEST_TIMEOUT_MS: '3000', DETQ_S3_SOCKET_TIMEOUT_MS: '3000' });
    await workerReady(w);
    const id = await enqueue('lost', 'bob');
    const chunk = chunkJobId(id, 0);
    await startedTimes(chunk, 1);
    expect(await queues.fair.backlog('bob')).toBe(1);
    // The lock taken away, as when it lapses (a stalled process, a partition): the worker stops the
    // attempt and BullMQ refuses its outcome; the stalled check hands the chunk out again.
    await queues.redis.del(`${queues.config.prefix}:chunks:${chunk}:lock`);
    const refused = new RegExp(`chunks worker error: (Missing lock|Lock mismatch) for job ${chunk}`);
    await waitFor('the attempt to end', async () => (refused.test(w.output()) ? true : undefined), 60_000);
    expect(w.output()).toContain(`chunk ${chunk}: lock lost, stopped labelling it`);
    expect(await queues.fair.backlog('bob')).toBe(1);
    await holes.set('pass');
    const view = await waitForEnd(client, id, 120_000);
    expect(view.status, w.output()).toBe('completed');
    expect(view.counts).toEqual({ total: 2, done: 2, failed: 0 });
    w.child.kill('SIGTERM');
    expect((await w.exited).code, w.output()).toBe(0);
    expect(await queues.fair.backlog('bob')).toBe(0);
  }, 300_000);

  it('a failed attempt that will be retried ends nothing; the chunk leaves the backlog when its retry completes', async () => {
    await uploadSet(store, 's3://in/retry/', cocoImageNames(2));
    const holes = await proxy();
    // The first image read hangs, so the first attempt is still running when the queue is paused below.
    void holes.when(/GET \/in\/retry\//, 'blackhole');
    // Two attempts; a short outage budget, so the first attempt gives up on its reads soon once S3 refuses.
    const w = worker({ S3_ENDPOINT: holes.endpoint, DETQ_CHUNK_ATTEMPTS: '2', DETQ_S3_OUTAGE_BUDGET_MS: '1000' });
    await workerReady(w);
    const id = await enqueue('retry', 'dave');
    const chunk = chunkJobId(id, 0);
    await startedTimes(chunk, 1);
    expect(await queues.fair.backlog('dave')).toBe(1);
    // Paused, the queue holds the retry until the first failure has been looked at, however soon its backoff ends.
    await queues.chunks.pause();
    try {
      // Refused reads are transient: with an attempt left the chunk fails retryably (not UnrecoverableError).
      await holes.set('refuse');
      const job = await waitFor('the first attempt to fail', async () => {
        const j = await queues.chunks.getJob(chunk);
        return j && j.attemptsMade === 1 ? j : undefined;
      }, 120_000);
      expect(job.failedReason).toMatch(/^transient storage error, chunk will be retried/);
      // The worker logs the 'failed' event after its fair-share listener has sent its SREM, if any.
      await waitFor('the worker to hear the failure', async () => (w.output().includes(`chunks job ${chunk} failed (attempt 1)`) ? true : undefined));
      expect(await queues.fair.backlog('dave')).toBe(1);
      await holes.set('pass');
    } finally {
      await queues.chunks.resume();
    }
    const view = await waitForEnd(client, id, 120_000);
    expect(view.status, w.output()).toBe('completed');
    expect(view.counts).toEqual({ total: 2, done: 2, failed: 0 });
    const done = (await queues.chunks.getJob(chunk))!;
    expect([await done.getState(), done.attemptsMade]).toEqual(['completed', 2]);
    // Drained: whatever the worker had sent to Redis has been answered.
    w.child.kill('SIGTERM');
    expect((await w.exited).code, w.output()).toBe(0);
    expect(await queues.fair.backlog('dave')).toBe(0);
  }, 300_000);

  it('a cancelled job\'s chunks, running and waiting, leave the backlog though attempts are left', async () => {
    await uploadSet(store, 's3://in/cancel/', cocoImageNames(2));
    const holes = await proxy();
    // The running chunk hangs on its first read until the cancel stops it.
    void holes.when(/GET \/in\/cancel\//, 'blackhole');
    // Two attempts: a cancel ends a chunk by UnrecoverableError, not by using up its attempts. One chunk at
    // a time, so the second chunk is still waiting when the job is cancelled. Short S3 timeouts, so the
    // finaliser's writes on black-holed connections are retried soon once the proxy passes again.
    const w = worker({
      S3_ENDPOINT: holes.endpoint,
      DETQ_CHUNK_ATTEMPTS: '2',
      DETQ_WORKER_CONCURRENCY: '1',
      DETQ_S3_REQUEST_TIMEOUT_MS: '3000',
      DETQ_S3_SOCKET_TIMEOUT_MS: '3000',
    });
    await workerReady(w);
    const spec = jobSpecSchema.parse({ input: { uri: 's3://in/cancel/' }, output: { uri: 's3://out/cancel/' }, chunkSize: 1 });
    const { id } = await client.enqueue(spec, { principal: 'erin' });
    const chunks = [chunkJobId(id, 0), chunkJobId(id, 1)];
    const states = () => Promise.all(chunks.map(async (c) => (await queues.chunks.getJob(c))?.getState()));
    await waitFor('a chunk to hang on S3', async () => ((await states()).includes('active') ? true : undefined), 120_000);
    // Planning over: both chunks were added.
    await waitFor('planning to end', async () => ((await client.view(id))?.status === 'running' ? true : undefined));
    expect(await queues.fair.backlog('erin')).toBe(2);
    // One chunk running, the other waiting its turn (BullMQ's state for a waiting job with a priority).
    expect((await states()).sort()).toEqual(['active', 'prioritized']);
    expect(await client.cancel(id)).toBe('cancelled');
    await waitFor('both chunks to fail', async () => ((await states()).every((s) => s === 'failed') ? true : undefined), 120_000);
    // Read once both ended (a job read before its state would be stale). Each failed on its first attempt
    // as a cancel, the waiting one without starting to label.
    const ended = await Promise.all(chunks.map(async (c) => (await queues.chunks.getJob(c))!));
    expect(ended.map((j) => [j.id, j.failedReason, j.attemptsMade])).toEqual(chunks.map((c) => [c, 'job cancelled', 1]));
    await holes.set('pass');
    w.child.kill('SIGTERM');
    expect((await w.exited).code, w.output()).toBe(0);
    expect(await queues.fair.backlog('erin')).toBe(0);
  }, 300_000);

  it('a chunk added again after it ended (a plan resumed after a lost lock, overlapping the first) does not rejoin the backlog', async () => {
    await uploadSet(store, 's3://in/replan/', cocoImageNames(2));
    const w = worker();
    await workerReady(w);
    const id = await enqueue('replan', 'frank');
    const view = await waitForEnd(client, id, 120_000);
    expect(view.status, w.output()).toBe('completed');
    w.child.kill('SIGTERM');
    expect((await w.exited).code, w.output()).toBe(0);
    const chunk = chunkJobId(id, 0);
    expect(await (await queues.chunks.getJob(chunk))!.getState()).toBe('completed');
    expect(await queues.fair.backlog('frank')).toBe(0);
    // What the resumed plan's addChunk asks before its chunks.add (which BullMQ ignores for an existing id):
    // the ended chunk ranks at the empty backlog and is not counted again, for no end will remove it.
    expect(await queues.fair.chunkPriority('frank', chunk, undefined)).toBe(setJobPriority(undefined));
    expect(await queues.fair.backlog('frank')).toBe(0);
    // A chunk that has not ended (here: not added yet) still joins.
    await queues.fair.chunkPriority('frank', chunkJobId(id, 1), undefined);
    expect(await queues.fair.backlog('frank')).toBe(1);
    await queues.fair.chunkEnded('frank', chunkJobId(id, 1));
  }, 300_000);
});
