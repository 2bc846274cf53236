import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_ERROR_CODES, jobSpecSchema, runSummarySchema } from '@detq/core';
import { createServer, createToken, TokenStore } from '@detq/api';
import { DetqQueues, JobClient, ScheduleClient, type JobView } from '@detq/queue';
import type { S3Store } from '@detq/storage';
import { cocoImageNames } from '../helpers/fixtures';
import { badFiles, testQueueConfig, uploadSet, waitFor, waitForEnd, type Manifest } from './helpers';
import { startInProcessWorker, type InProcessWorker } from './in-process-worker';

describe('worker (in process): sets, cancel, SSE, schedules', () => {
  let store: S3Store;
  let queues: DetqQueues;
  let client: JobClient;
  let running: InProcessWorker | undefined;
  const config = testQueueConfig();

  beforeAll(async () => {
    running = await startInProcessWorker(config);
    ({ store, queues, client } = running);
  }, 60_000);

  afterAll(() => running?.stop());

  it('labels a set with bad files: every file once in the manifest, bad ones with their codes', async () => {
    const bad = badFiles();
    const keys = await uploadSet(store, 's3://in/small/', cocoImageNames(16), bad);
    const spec = jobSpecSchema.parse({
      input: { uri: 's3://in/small/' },
      output: { uri: 's3://out/small/', formats: ['jsonl', 'coco', 'yolo', 'labelstudio'] },
      chunkSize: 6,
    });
    const { id } = await client.enqueue(spec);
    const view = await waitForEnd(client, id);
    expect(view.status).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: keys.length, done: keys.length, failed: Object.keys(bad).length });

    const manifest = JSON.parse((await store.get('s3://out/small/manifest.json')).toString()) as Manifest;
    expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
    for (const entry of manifest.images) {
      // Every bad file gets its own exact code (never a chunk-level CHUNK_FAILED), spread over several chunks.
      if (entry.key in bad) expect(entry.error?.code, entry.key).toBe(bad[entry.key]!.code);
      else expect(entry.result, entry.key).toBe(`_detq/${id}/chunks/${entry.result!.slice(-11)}`);
    }
    const chunksWithBadFiles = new Set(manifest.images.filter((e) => e.key in bad).map((e) => Math.floor(keys.indexOf(e.key) / 6)));
    expect(chunksWithBadFiles.size).toBeGreaterThan(1);
    // The same summary schema as `detq label` writes.
    const summary = runSummarySchema.parse(JSON.parse((await store.get('s3://out/small/summary.json')).toString()));
    expect(summary.counts.failed).toBe(Object.keys(bad).length);
    expect(summary.provenance.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    const coco = JSON.parse((await store.get('s3://out/small/coco.json')).toString());
    expect(coco.images).toHaveLength(16);
    expect(coco.annotations.length).toBeGreaterThan(0);
  }, 120_000);

  it('an input with no images is a failed job naming the input and its filters', async () => {
    await store.put('s3://in/none/readme.txt', 'no images');
    const { id } = await client.enqueue(jobSpecSchema.parse({ input: { uri: 's3://in/none/', exclude: ['*.md'] }, output: { uri: 's3://out/none/' } }));
    const view = await waitForEnd(client, id);
    expect(view).toMatchObject({ status: 'failed', error: 'no images found under s3://in/none/ (exclude *.md)' });
  });

  it('cancel: chunks not yet started never run, the manifest still names every image once', async () => {
    await uploadSet(store, 's3://in/cancel/', cocoImageNames(12));
    await queues.chunks.pause();
    try {
      const { id } = await client.enqueue(jobSpecSchema.parse({ input: { uri: 's3://in/cancel/' }, output: { uri: 's3://out/cancel/' }, chunkSize: 4 }));
      await waitFor('planning to finish', async () => ((await client.view(id))?.status === 'running' ? true : undefined));
      expect(await client.cancel(id)).toBe('cancelled');
      expect(await client.cancel(id)).toBe('already_ended');
    } finally {
      await queues.chunks.resume();
    }
    const ended = await waitFor('the cancelled job to be finalised', async () => {
      const summary = await store.get('s3://out/cancel/summary.json').catch(() => undefined);
      return summary && JSON.parse(summary.toString());
    });
    expect(ended.status).toBe('cancelled');
    expect(ended.errorsByCode).toEqual({ CANCELLED: 12 });
    const manifest = JSON.parse((await store.get('s3://out/cancel/manifest.json')).toString()) as Manifest;
    expect(manifest.images.map((i) => i.key).sort()).toEqual(cocoImageNames(12));
  }, 60_000);

  it('SSE delivers progress events, then the end', async () => {
    const tok = createToken('t', ['s3://in/*', 's3://out/*']);
    const app = createServer({ queues, tokens: new TokenStore([tok.entry]), s3Ready: async () => {}, eventsIntervalMs: 100 });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      await uploadSet(store, 's3://in/sse/', cocoImageNames(24));
      const headers = { authorization: `Bearer ${tok.token}`, 'content-type': 'application/json' };
      const spec = { input: { uri: 's3://in/sse/' }, output: { uri: 's3://out/sse/' }, chunkSize: 4 };
      const { id } = (await (await fetch(`${base}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify(spec) })).json()) as { id: string };
      const res = await fetch(`${base}/v1/jobs/${id}/events`, { headers });
      expect(res.headers.get('content-type')).toBe('text/event-stream');
      const events = (await res.text()).split('\n\n').filter(Boolean).map((block) => {
        const [event, data] = block.split('\n');
        return { event: event!.replace('event: ', ''), data: JSON.parse(data!.replace('data: ', '')) as JobView };
      });
      const progress = events.filter((e) => e.event === 'progress');
      expect(progress.some((e) => e.data.counts.done > 0 && e.data.counts.done < 24)).toBe(true);
      expect(events.at(-1)).toMatchObject({ event: 'end', data: { id, status: 'completed', counts: { total: 24, done: 24, failed: 0 } } });
    } finally {
      await app.close();
    }
  }, 60_000);

  it('a scheduled incremental run over a prefix where 20 of 148 images are new labels only those 20', async () => {
    const old = cocoImageNames();
    await uploadSet(store, 's3://in/nightly/', old);
    const spec = jobSpecSchema.parse({ input: { uri: 's3://in/nightly/' }, output: { uri: 's3://out/nightly/' }, incremental: true });
    const first = await waitForEnd(client, (await client.enqueue(spec)).id, 240_000);
    expect(first.counts).toMatchObject({ total: 128, done: 128 });

    const fresh = old.slice(0, 20).map((name) => `new/${name}`);
    for (const [i, key] of fresh.entries()) await store.put(`s3://in/nightly/${key}`, await store.get(`s3://in/nightly/${old[i]}`));
    // Every second (a 1 s minimum interval instead of the default 60 s), so the test need not wait for
    // 2 a.m.; once the scheduler has made a run it is removed.
    const schedules = new ScheduleClient(queues, 1);
    await schedules.add({ id: 'nightly', cron: '*/1 * * * * *', spec });
    let runId: string;
    try {
      runId = await waitFor('the scheduler to start a run', async () => {
        const { jobs } = await client.list({ limit: 50 });
        return jobs.find((j) => j.scheduleId === 'nightly')?.id;
      });
    } finally {
      await schedules.remove('nightly');
    }
    const run = await waitForEnd(client, runId, 120_000);
    expect(run.status).toBe('completed');
    expect(run.counts).toMatchObject({ total: 20, done: 20, failed: 0 });
    expect(run.output).toMatch(/^s3:\/\/out\/nightly\/runs\/\d{8}T\d{6}Z\/$/);
    // The run's manifest names every input once: the 20 new ones labelled by it, the 128 others pointing
    // at the first job's records.
    const manifest = JSON.parse((await store.get(`${run.output}manifest.json`)).toString()) as Manifest;
    expect(manifest.images.map((i) => i.key).sort()).toEqual([...old, ...fresh].sort());
    for (const e of manifest.images) {
      if (fresh.includes(e.key)) expect(e.result, e.key).toMatch(new RegExp(`^_detq/${runId.replaceAll(':', '_')}/chunks/`));
      else expect(e.result, e.key).toMatch(new RegExp(`^s3://out/nightly/_detq/${first.id}/chunks/\\d{5}\\.jsonl$`));
    }
    const summary = JSON.parse((await store.get(`${run.output}summary.json`)).toString());
    expect(summary.counts).toMatchObject({ total: 148, labelled: 20, skipped: 128, failed: 0 });
    const lines = (await store.get(`${run.output}detections.jsonl`)).toString().trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { key: string }).key).sort()).toEqual([...old, ...fresh].sort());
  }, 420_000);
});
