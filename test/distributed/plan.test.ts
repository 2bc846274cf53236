import type { Readable } from 'node:stream';
import { Worker as BullWorker, UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobSpecSchema, type JobSpecInput } from '@detq/core';
import { createServer, createToken, TokenStore } from '@detq/api';
import { CHUNK_QUEUE, DetqQueues, JobClient, OutputBusyError, Reconciler, SET_QUEUE, type ChunkJobData, type JobView } from '@detq/queue';
import type { ListOptions, ObjectEntry, ObjectStore, ReadOptions, S3Store } from '@detq/storage';
import { cocoImageNames } from '../helpers/fixtures';
import { badFiles, dropPrefix, testQueueConfig, uploadSet, waitFor, waitForEnd, type Manifest } from './helpers';
import { startInProcessWorker, type InProcessWorker } from './in-process-worker';

/**
 * The worker's store with faults a test switches on: a hook before every entry of an input listing (to
 * fail a planning attempt at a chosen point, or act between attempts), a hook before every read (to hold
 * it), and refused writes.
 */
class FaultStore implements ObjectStore {
  onListEntry?: (n: number, uri: string, options: ListOptions) => Promise<void>;
  beforeGet?: (uri: string, options: ReadOptions) => Promise<void>;
  refusePut?: (uri: string) => boolean;

  constructor(private readonly inner: ObjectStore) {}

  async get(uri: string, options: ReadOptions = {}): Promise<Buffer> {
    await this.beforeGet?.(uri, options);
    return this.inner.get(uri, options);
  }

  put(uri: string, body: Buffer | string, contentType?: string): Promise<void> {
    if (this.refusePut?.(uri)) return Promise.reject(Object.assign(new Error(`injected: S3 refused the write of ${uri}`), { $metadata: { httpStatusCode: 503 } }));
    return this.inner.put(uri, body, contentType);
  }

  upload(uri: string, open: () => Readable, contentType?: string): Promise<void> {
    return this.inner.upload(uri, open, contentType);
  }

  exists(uri: string): Promise<boolean> {
    return this.inner.exists(uri);
  }

  async *list(prefixUri: string, options: ListOptions = {}): AsyncIterable<ObjectEntry> {
    let n = 0;
    for await (const e of this.inner.list(prefixUri, options)) {
      await this.onListEntry?.(n++, e.uri, options);
      yield e;
    }
  }
}

/** A private queue set on its own prefix and a bare BullMQ worker on one of its queues (to move jobs by hand), removed after `use`. */
async function withBareWorker(queue: string, use: (q: DetqQueues, bull: BullWorker) => Promise<void>): Promise<void> {
  const cfg = testQueueConfig();
  const q = new DetqQueues(cfg);
  const connection = q.redis.duplicate();
  const bull = new BullWorker(queue, null, { connection, prefix: cfg.prefix });
  try {
    await use(q, bull);
  } finally {
    await bull.close();
    connection.disconnect();
    await q.close();
    await dropPrefix(cfg.prefix);
  }
}

const transient = () => Object.assign(new Error('injected: connection reset while listing'), { code: 'ECONNRESET' });

describe('persisted plan: re-planning, shared outputs, cancel while planning, failed chunks, re-runs', () => {
  let store: S3Store;
  let fault: FaultStore;
  let queues: DetqQueues;
  let client: JobClient;
  let running: InProcessWorker | undefined;
  const config = testQueueConfig();
  const bad = badFiles();
  const empties = (n: number, dir = 'e') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${dir}/empty-${i}.jpg`, { bytes: Buffer.alloc(0), code: 'EMPTY_FILE' }]));
  const expectedCode = (key: string) => (bad[key] ?? empties(100)[key] ?? empties(100, 'late')[key])?.code;
  const enqueue = async (spec: JobSpecInput) => (await client.enqueue(jobSpecSchema.parse(spec))).id;
  const manifestOf = async (output: string) => JSON.parse((await store.get(`${output}manifest.json`)).toString()) as Manifest;
  const recordKeys = async (output: string) =>
    (await store.get(`${output}detections.jsonl`)).toString().trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key).sort();
  /** Every key exactly once in manifest.json and detections.jsonl, every bad file with its exact code. */
  const expectExactlyOnce = async (output: string, keys: string[]) => {
    const manifest = await manifestOf(output);
    expect(manifest.images.map((i) => i.key).sort()).toEqual([...keys].sort());
    expect(manifest.total).toBe(keys.length);
    expect(await recordKeys(output)).toEqual([...keys].sort());
    for (const e of manifest.images) expect(e.error?.code, e.key).toBe(expectedCode(e.key));
    return manifest;
  };

  beforeAll(async () => {
    running = await startInProcessWorker(config, { attempts: 2 }, (s3) => (fault = new FaultStore(s3)));
    ({ store, queues, client } = running);
  }, 60_000);

  afterAll(() => running?.stop());

  it('an incremental job whose planning fails after 3 chunks completed resumes after the recorded cursor', async () => {
    const keys = await uploadSet(store, 's3://in/replan/', cocoImageNames(8), { ...bad, ...empties(4) });
    let attempts = 0;
    let id = '';
    const cursors: (string | undefined)[] = [];
    fault.onListEntry = async (n, _uri, options) => {
      if (n === 0) cursors.push(options.startAfter);
      if (n === 0) attempts++;
      if (attempts !== 1 || n !== 12) return;
      // Three pages are recorded and their chunks run to the end before the planning attempt fails: a
      // re-derived plan would now skip the 8 labelled images and renumber the chunks.
      await waitFor('the first three chunks', async () => (((await client.view(id))?.counts.done ?? 0) >= 12 ? true : undefined), 240_000);
      throw transient();
    };
    try {
      id = await enqueue({ input: { uri: 's3://in/replan/' }, output: { uri: 's3://out/replan/', formats: ['jsonl', 'coco'] }, chunkSize: 4, incremental: true });
      const view = await waitForEnd(client, id, 300_000);
      expect(view.status).toBe('completed_with_errors');
      expect(view.counts).toEqual({ total: 20, done: 20, failed: 12 });
    } finally {
      fault.onListEntry = undefined;
    }
    expect(attempts).toBe(2);
    expect(cursors).toEqual([undefined, `s3://in/replan/${keys[11]}`]);
    expect((await queues.jobs.get(id))!.chunks).toBe(5);
    const manifest = await expectExactlyOnce('s3://out/replan/', keys);
    for (const e of manifest.images.filter((i) => !i.error)) expect(e.result).toMatch(new RegExp(`^_detq/${id}/chunks/0000[01]\\.jsonl$`));
  }, 360_000);

  it('objects added between two planning attempts: nothing twice, nothing lost; keys before the cursor wait for the next run', async () => {
    const keys = await uploadSet(store, 's3://in/added/', cocoImageNames(2), { ...bad, ...empties(10) });
    let attempts = 0;
    fault.onListEntry = async (n) => {
      if (n === 0) attempts++;
      if (attempts !== 1 || n !== 8) return;
      for (const key of ['000-early.jpg', 'bad/zz-mid.jpg', 'late/empty-0.jpg']) await store.put(`s3://in/added/${key}`, Buffer.alloc(0));
      throw transient();
    };
    let id: string;
    try {
      id = await enqueue({ input: { uri: 's3://in/added/' }, output: { uri: 's3://out/added/' }, chunkSize: 4 });
      expect((await waitForEnd(client, id, 240_000)).status).toBe('completed_with_errors');
    } finally {
      fault.onListEntry = undefined;
    }
    expect(attempts).toBe(2);
    // bad/zz-mid.jpg and late/ sort after the cursor (the 8th key): planned once. 000-early.jpg sorts before
    // it: a listing never goes back, the next (incremental) run picks it up.
    const manifest = await manifestOf('s3://out/added/');
    expect(manifest.images.map((i) => i.key).sort()).toEqual([...keys, 'bad/zz-mid.jpg', 'late/empty-0.jpg'].sort());
    expect(await recordKeys('s3://out/added/')).toEqual([...keys, 'bad/zz-mid.jpg', 'late/empty-0.jpg'].sort());
    for (const e of manifest.images) expect(e.error?.code, e.key).toBe(e.key === 'bad/zz-mid.jpg' ? 'EMPTY_FILE' : expectedCode(e.key));
  }, 300_000);

  it('two jobs on one output prefix: the second is refused (409 naming the first) while the first runs; later runs never touch its results', async () => {
    const keys = await uploadSet(store, 's3://in/shared/', cocoImageNames(2), Object.fromEntries(Object.entries(bad).slice(0, 4)));
    const spec = { input: { uri: 's3://in/shared/' }, output: { uri: 's3://out/shared/', formats: ['jsonl' as const] }, chunkSize: 3 };
    const tok = createToken('t', ['s3://in/*', 's3://out/*']);
    const app = createServer({ queues, tokens: new TokenStore([tok.entry]), s3Ready: async () => {} });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    let first: string;
    await queues.chunks.pause();
    try {
      first = await enqueue(spec);
      await waitFor('planning to finish', async () => ((await client.view(first))?.status === 'running' ? true : undefined));
      await expect(client.enqueue(jobSpecSchema.parse(spec))).rejects.toMatchObject({ name: 'OutputBusyError', runningJobId: first });
      const res = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${tok.token}`, 'content-type': 'application/json' }, body: JSON.stringify(spec) });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({ runningJob: first, error: expect.stringContaining(first) });
      // Another prefix is free.
      const other = await enqueue({ ...spec, output: { uri: 's3://out/shared-other/' } });
      expect(await client.cancel(other)).toBe('cancelled');
    } finally {
      await queues.chunks.resume();
      await app.close();
    }
    expect((await waitForEnd(client, first, 240_000)).status).toBe('completed_with_errors');
    const firstChunks = await Promise.all([0, 1].map((i) => store.get(`s3://out/shared/_detq/${first}/chunks/0000${i}.jsonl`)));
    const second = await enqueue(spec);
    expect(second).not.toBe(first);
    expect((await waitForEnd(client, second, 240_000)).status).toBe('completed_with_errors');
    const manifest = await expectExactlyOnce('s3://out/shared/', keys);
    for (const e of manifest.images.filter((i) => !i.error)) expect(e.result).toMatch(new RegExp(`^_detq/${second}/chunks/`));
    for (const [i, body] of firstChunks.entries()) expect((await store.get(`s3://out/shared/_detq/${first}/chunks/0000${i}.jsonl`)).equals(body)).toBe(true);
    expect(new OutputBusyError('s3://x/', 'j').message).toContain('j is already writing to s3://x/');
  }, 300_000);

  it('cancel during planning: the rest of the input is recorded as cancelled, the manifest names every image once, nothing counts as done', async () => {
    const keys = await uploadSet(store, 's3://in/cancelplan/', cocoImageNames(4), { ...bad, ...empties(8) });
    let id = '';
    await queues.chunks.pause();
    fault.onListEntry = async (n) => {
      if (n === 8) expect(await client.cancel(id)).toBe('cancelled');
    };
    try {
      id = await enqueue({ input: { uri: 's3://in/cancelplan/' }, output: { uri: 's3://out/cancelplan/' }, chunkSize: 4 });
      await waitFor('planning to end', async () => ((await queues.jobs.get(id))?.planned ? true : undefined));
    } finally {
      fault.onListEntry = undefined;
      await queues.chunks.resume();
    }
    const summary = await waitFor('the cancelled job to be finalised', async () => {
      const body = await store.get(`s3://out/cancelplan/_detq/${id}/summary.json`).catch(() => undefined);
      return body && (JSON.parse(body.toString()) as { status: string; errorsByCode: Record<string, number>; counts: Record<string, number> });
    });
    expect(summary.status).toBe('cancelled');
    expect(summary.errorsByCode).toEqual({ CANCELLED: 20 });
    const state = (await queues.jobs.get(id))!;
    expect(state.chunks).toBe(5);
    // Page 2 was being recorded when the cancel landed (its chunk was never added); the pages after it are
    // recorded as cancelled without a chunk job.
    for (const page of await queues.jobs.pages(id, 3, 5)) expect(page.cancelled).toBe(true);
    const manifest = await manifestOf('s3://out/cancelplan/');
    expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
    expect(await recordKeys('s3://out/cancelplan/')).toEqual(keys);
    for (const e of manifest.images) expect(e.error?.code, e.key).toBe('CANCELLED');
    const view = (await client.view(id))!;
    expect(view.status).toBe('cancelled');
    expect(view.counts.done).toBe(0);
  }, 240_000);

  it('CHUNK_FAILED: a chunk whose result can never be written fails on every attempt; its images, and only they, get CHUNK_FAILED', async () => {
    const keys = await uploadSet(store, 's3://in/chunkfail/', cocoImageNames(2), { ...empties(4, 'f'), ...Object.fromEntries(Object.entries(bad).slice(0, 2)) });
    fault.refusePut = (uri) => uri.startsWith('s3://out/chunkfail/_detq/') && uri.endsWith('/chunks/00001.jsonl');
    let view: JobView;
    try {
      const id = await enqueue({ input: { uri: 's3://in/chunkfail/' }, output: { uri: 's3://out/chunkfail/' }, chunkSize: 2 });
      view = await waitForEnd(client, id, 240_000);
    } finally {
      fault.refusePut = undefined;
    }
    expect(view.status).toBe('completed_with_errors');
    const manifest = await manifestOf('s3://out/chunkfail/');
    expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
    expect(await recordKeys('s3://out/chunkfail/')).toEqual(keys);
    // Sorted keys: 2 coco images (chunk 0), bad/empty + bad/truncated (chunk 1, refused), f/ empties (2, 3).
    const failedChunk = keys.slice(2, 4);
    for (const e of manifest.images) {
      if (failedChunk.includes(e.key)) {
        expect(e.error?.code, e.key).toBe('CHUNK_FAILED');
        expect(e.error?.message).toContain('injected: S3 refused the write');
      } else expect(e.error?.code, e.key).toBe(e.key.startsWith('f/') ? 'EMPTY_FILE' : undefined);
    }
    const summary = JSON.parse((await store.get('s3://out/chunkfail/summary.json')).toString());
    expect(summary.counts).toMatchObject({ total: 8, labelled: 2, failed: 6, failedChunks: 1 });
  }, 300_000);

  it('a set job BullMQ fails outside the processor is reconciled into the store by the sweep', async () => {
    await withBareWorker(SET_QUEUE, async (q, bull) => {
      const { id } = await new JobClient(q).enqueue(jobSpecSchema.parse({ input: { uri: 's3://in/none/' }, output: { uri: 's3://out/none/' } }));
      // What the stall limit does to a job whose workers keep dying: BullMQ moves it to failed itself.
      const job = (await bull.getNextJob('tok'))!;
      expect(job.id).toBe(id);
      await job.moveToFailed(new UnrecoverableError('job stalled more than allowable limit'), 'tok');
      expect(await q.jobs.status(id)).toBe('queued');
      expect(await new Reconciler(q).sweep()).toMatchObject({ failed: [id] });
      const view = (await new JobClient(q).view(id))!;
      expect(view).toMatchObject({ status: 'failed', error: 'job stalled more than allowable limit' });
      expect(await q.jobs.live()).toEqual([]);
      // Its keys now expire DETQ_JOB_TTL after the end.
      expect(await q.redis.ttl(q.jobs.key('job', id))).toBeGreaterThan(q.jobs.ttlSeconds - 60);
    });
  }, 60_000);

  it("the sweep takes chunks that ended unrecorded out of their tenant's backlog, and keeps waiting ones", async () => {
    const data = (index: number): ChunkJobData => ({ setId: 'swept', index, resultUri: `s3://out/swept/${index}.jsonl`, images: [], params: jobSpecSchema.parse({ input: { uri: 's3://in/s/' }, output: { uri: 's3://out/s/' } }).params, model: { uri: 'default' } });
    await withBareWorker(CHUNK_QUEUE, async (q, bull) => {
      const add = async (index: number) => {
        const jobId = `swept-c${index}`;
        // As the planner does it: counted, then added.
        await q.chunks.add('chunk', data(index), { jobId, priority: await q.fair.chunkPriority('tenant-s', jobId, undefined) });
        return jobId;
      };
      // A chunk that completed, but whose worker died before the backlog heard of it (no Worker here listens).
      const done = await add(0);
      const job = (await bull.getNextJob('tok'))!;
      expect(job.id).toBe(done);
      await job.moveToCompleted('ok', 'tok', false);
      const waiting = await add(1);
      // Counted, and its job gone (removed by hand) or not added yet: only a later sweep may drop it.
      await q.fair.chunkPriority('tenant-s', 'swept-c2', undefined);
      expect(await q.fair.backlog('tenant-s')).toBe(3);
      const t0 = Date.now();
      expect((await new Reconciler(q).sweep(t0)).backlog).toEqual([done]);
      const reconciler = new Reconciler(q);
      expect((await reconciler.sweep(t0)).backlog).toEqual([]);
      expect((await reconciler.sweep(t0 + 61_000)).backlog).toEqual(['swept-c2']);
      expect(await q.fair.backlog('tenant-s')).toBe(1);
      expect(await q.redis.smembers(q.jobs.key('backlog', 'tenant-s'))).toEqual([waiting]);
      expect(await q.redis.smembers(q.jobs.key('backlog-tenants'))).toEqual(['tenant-s']);
      // A chunk added between the sweep's look and its removal stays counted, as does every live one.
      await q.fair.chunkPriority('tenant-s', 'swept-c3', undefined);
      const racing = await q.fair.repair(async (id) => {
        if (id === 'swept-c3') await q.chunks.add('chunk', data(3), { jobId: id });
        return true;
      });
      expect(racing).toEqual([]);
      expect((await q.redis.smembers(q.jobs.key('backlog', 'tenant-s'))).sort()).toEqual([waiting, 'swept-c3']);
      // A timer firing during a sweep joins it instead of starting a second one.
      const first = reconciler.sweep();
      expect(reconciler.sweep()).toBe(first);
      await first;
    });
  }, 60_000);

  it('honest progress: a chunk re-run from 0 never lowers nor doubles the counts; img/s counts labelled images only', async () => {
    const cfg = testQueueConfig();
    const q = new DetqQueues(cfg);
    try {
      const id = 'progress';
      await q.jobs.create(id, { spec: jobSpecSchema.parse({ input: { uri: 's3://in/p/' }, output: { uri: 's3://out/p/' } }), output: 's3://out/p/' });
      const startedAt = Date.now();
      await q.jobs.setStatus(id, 'running', { startedAt, total: 512, planned: 1 });
      await q.jobs.reportChunks(id, [[0, 200, 10], [1, 50, 0]]);
      // Chunk 0's lock was lost: its second run starts again from 0 and reports lower counts.
      await q.jobs.reportChunks(id, [[0, 30, 0], [1, 60, 0]]);
      expect(await q.jobs.get(id)).toMatchObject({ done: 260, failed: 10 });
      await q.jobs.reportChunks(id, [[0, 256, 12]]);
      const view = JobClient.toView((await q.jobs.get(id))!, startedAt + 10_000);
      expect(view.counts).toEqual({ total: 512, done: 316, failed: 12 });
      // 316 - 12 images labelled in 10 s of wall time; the ETA counts every processed image.
      expect(view.imagesPerSecond).toBe(30.4);
      expect(view.eta).toBe(Math.round((512 - 316) / 31.6));
    } finally {
      await q.close();
      await dropPrefix(cfg.prefix);
    }
  });

  it('an incremental re-run into the same output after a cancel, then one with nothing new: every image exactly once, earlier results kept', async () => {
    const keys = await uploadSet(store, 's3://in/rerun/', cocoImageNames(12));
    const spec = { input: { uri: 's3://in/rerun/' }, output: { uri: 's3://out/rerun/', formats: ['jsonl' as const, 'coco' as const] }, chunkSize: 3, incremental: true };
    // The last chunk's reads wait for its cancel, so the first job can never label all 12 images before
    // the cancel reaches it (then the second run would have nothing to label and no outputs to write).
    const held = new Set(keys.slice(9).map((k) => `s3://in/rerun/${k}`));
    fault.beforeGet = async (uri, { signal }) => {
      if (held.has(uri) && signal) await new Promise((resolve) => (signal.aborted ? resolve(undefined) : signal.addEventListener('abort', resolve, { once: true })));
    };
    let first = '';
    try {
      first = await enqueue(spec);
      await waitFor('the first chunk', async () => (((await client.view(first))?.counts.done ?? 0) >= 3 ? true : undefined), 240_000);
      expect(await client.cancel(first)).toBe('cancelled');
      await waitFor('the cancelled job to be finalised', async () => ((await queues.jobs.get(first))?.finalisedAt ? true : undefined), 240_000);
    } finally {
      fault.beforeGet = undefined;
    }
    const cancelled = await manifestOf('s3://out/rerun/');
    const labelledFirst = cancelled.images.filter((i) => !i.error).map((i) => i.key);
    expect(labelledFirst.length).toBeGreaterThanOrEqual(3);
    expect(labelledFirst).not.toContain(keys[9]);
    expect(cancelled.images.map((i) => i.key).sort()).toEqual(keys);
    const firstResults = new Map(
      await Promise.all(
        [...new Set(cancelled.images.filter((i) => i.result).map((i) => i.result!))].map(async (r) => [r, await store.get(`s3://out/rerun/${r}`)] as const),
      ),
    );

    const second = await enqueue(spec);
    const secondView = await waitForEnd(client, second, 240_000);
    expect(secondView.status).toBe('completed');
    expect(secondView.counts.total).toBe(12 - labelledFirst.length);
    const manifest = await expectExactlyOnce('s3://out/rerun/', keys);
    for (const e of manifest.images) {
      if (labelledFirst.includes(e.key)) expect(e, e.key).toMatchObject({ skipped: true, result: expect.stringMatching(new RegExp(`^_detq/${first}/chunks/`)) });
      else expect(e.result, e.key).toMatch(new RegExp(`^_detq/${second}/chunks/`));
    }
    for (const [rel, body] of firstResults) expect((await store.get(`s3://out/rerun/${rel}`)).equals(body), rel).toBe(true);
    const coco = JSON.parse((await store.get('s3://out/rerun/coco.json')).toString()) as { images: { file_name: string }[] };
    expect(coco.images.map((i) => i.file_name).sort()).toEqual(keys);

    const outputs = ['manifest.json', 'detections.jsonl', 'coco.json', 'summary.json'];
    const before = await Promise.all(outputs.map((f) => store.get(`s3://out/rerun/${f}`)));
    const third = await enqueue(spec);
    const thirdView = await waitForEnd(client, third, 120_000);
    expect(thirdView).toMatchObject({ status: 'completed', counts: { total: 0, done: 0, failed: 0 }, message: expect.stringContaining('nothing new to label: all 12 images') });
    const after = await Promise.all(outputs.map((f) => store.get(`s3://out/rerun/${f}`)));
    after.forEach((body, i) => expect(body.equals(before[i]!), outputs[i]).toBe(true));
    await expectExactlyOnce('s3://out/rerun/', keys);
  }, 480_000);
});
