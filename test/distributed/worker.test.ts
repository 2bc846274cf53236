import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobSpecSchema } from '@detq/core';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { createWorker, workerSettingsFromEnv, type DetqWorker } from '@detq/worker';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { badFiles, cocoImages, dropPrefix, testQueueConfig, uploadSet, waitForEnd, type Manifest } from './helpers';

describe('worker (in process)', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let worker: DetqWorker;
  let queues: DetqQueues;
  let client: JobClient;
  const config = testQueueConfig();

  beforeAll(async () => {
    s3 = await startS3Server();
    Object.assign(process.env, s3.env);
    store = new S3Store(s3ConfigFromEnv(s3.env));
    worker = await createWorker({ ...workerSettingsFromEnv({}), queue: config, threads: 2, progressIntervalMs: 200 }, { log: () => {} });
    queues = new DetqQueues(config);
    client = new JobClient(queues);
  }, 60_000);

  afterAll(async () => {
    await worker?.close();
    await queues?.close();
    await dropPrefix(config.prefix);
    store?.destroy();
    await s3?.stop();
  });

  it('labels a set with bad files: every file once in the manifest, bad ones with their codes', async () => {
    const bad = badFiles();
    const keys = await uploadSet(store, 's3://in/small/', cocoImages(16), bad);
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
      if (entry.key in bad) expect(entry.error?.code, entry.key).toMatch(/^[A-Z_]+$/);
      else expect(entry.result, entry.key).toMatch(/^chunks\/\d{5}\.jsonl$/);
    }
    const summary = JSON.parse((await store.get('s3://out/small/summary.json')).toString());
    expect(summary.counts.failed).toBe(Object.keys(bad).length);
    expect(summary.provenance.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    const coco = JSON.parse((await store.get('s3://out/small/coco.json')).toString());
    expect(coco.images).toHaveLength(16);
    expect(coco.annotations.length).toBeGreaterThan(0);
  }, 120_000);
});
