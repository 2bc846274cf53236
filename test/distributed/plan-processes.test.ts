import { readFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobSpecSchema } from '@detq/core';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { startS3ServerProcess, type TestS3Server } from '../helpers/s3-server';
import { cocoImageNames, COCO_IMAGES } from '../helpers/fixtures';
import { badFiles, dropPrefix, startDetq, testQueueConfig, uploadSet, waitFor, waitForEnd, type Manifest, type DetqProcess as Proc } from './helpers';

/**
 * An HTTP proxy in front of the S3 server that forwards everything, except that it never answers the first
 * request matching `hold` (the connection stays open, as a dying upload would) and reports it.
 */
async function holdingProxy(target: string, hold: (req: IncomingMessage) => boolean): Promise<{ endpoint: string; held: Promise<string>; close(): void }> {
  const to = new URL(target);
  let onHeld!: (path: string) => void;
  const held = new Promise<string>((r) => (onHeld = r));
  let holding = false;
  const server: Server = createServer((req, res) => {
    if (!holding && hold(req)) {
      holding = true;
      onHeld(req.url ?? '');
      return;
    }
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

const pad = (i: number) => String(i).padStart(5, '0');

describe('processes: a worker SIGKILLed while planning 5,000 keys; a finaliser killed mid-upload', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let queues: DetqQueues;
  let client: JobClient;
  let env: NodeJS.ProcessEnv;
  const config = testQueueConfig();
  const procs: Proc[] = [];
  const worker = (extra: NodeJS.ProcessEnv = {}) => {
    const p = startDetq(['worker'], { ...env, ...extra });
    procs.push(p);
    return p;
  };
  const ready = (p: Proc) => waitFor('a worker to load its model', async () => (/detq worker: .* concurrency/.test(p.output()) ? true : undefined), 120_000);
  const manifestOf = async (output: string) => JSON.parse((await store.get(`${output}manifest.json`)).toString()) as Manifest;
  const recordKeys = async (output: string) =>
    (await store.get(`${output}detections.jsonl`)).toString().trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key).sort();

  beforeAll(async () => {
    // Its own process: listing 5,000 keys needs s3rver's legacy crypto (see startS3ServerProcess).
    s3 = await startS3ServerProcess();
    Object.assign(process.env, s3.env);
    store = new S3Store(s3ConfigFromEnv(s3.env));
    queues = new DetqQueues(config);
    client = new JobClient(queues);
    env = {
      ...process.env,
      ...s3.env,
      REDIS_URL: config.redisUrl,
      // The test's Redis is a throwaway one: no persistence needed (worker-faults.test.ts proves the refusal).
      DETQ_ALLOW_VOLATILE_REDIS: '1',
      DETQ_QUEUE_PREFIX: config.prefix,
      DETQ_THREADS: '1',
      DETQ_LOCK_MS: '4000',
      DETQ_PROGRESS_MS: '250',
    };
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await queues?.close();
    await dropPrefix(config.prefix);
    store?.destroy();
    await s3?.stop();
  });

  it('a worker SIGKILLed while planning 5,024 keys: the plan resumes, no page re-derived, every key exactly once', async () => {
    // Mostly empty .jpg files (EMPTY_FILE without inference, so 5,000 keys label in seconds on a CPU),
    // 16 real images and the 8 kinds of bad files spread through the listing.
    const coco = cocoImageNames(16);
    const empties = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k/${pad(i)}.jpg`, { bytes: Buffer.alloc(0), code: 'EMPTY_FILE' }]));
    const bad = badFiles(Object.keys(empties));
    const realKeys = coco.map((name, i) => `k/${pad(i * 311)}-${name}`);
    const expected: Record<string, string | undefined> = { ...Object.fromEntries(realKeys.map((k) => [k, undefined])) };
    for (const [k, f] of Object.entries({ ...empties, ...bad })) expected[k] = f.code;
    const files = Object.entries({ ...empties, ...bad });
    for (let i = 0; i < files.length; i += 128) await Promise.all(files.slice(i, i + 128).map(([k, f]) => store.put(`s3://in/big/${k}`, f.bytes)));
    await Promise.all(realKeys.map(async (k, i) => store.put(`s3://in/big/${k}`, await readFile(join(COCO_IMAGES, coco[i]!)))));
    const keys = Object.keys(expected).sort();
    expect(keys).toHaveLength(5024);

    const a = worker();
    await ready(a);
    const { id } = await client.enqueue(jobSpecSchema.parse({ input: { uri: 's3://in/big/' }, output: { uri: 's3://out/big/' }, chunkSize: 20 }));
    const atKill = await waitFor('5 plan pages', async () => {
      const s = await queues.jobs.get(id);
      return s && s.chunks >= 5 ? s : undefined;
    }, 120_000).catch((err: Error) => {
      throw new Error(`${err.message}; worker output:\n${a.output()}`);
    });
    a.child.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    // The kill landed while planning: the plan was not complete.
    expect(atKill.planned).toBe(false);
    const pagesAtKill = await queues.jobs.pages(id, 0, atKill.chunks);

    const [b, c] = [worker(), worker()];
    await Promise.all([ready(b), ready(c)]);
    const view = await waitForEnd(client, id, 300_000);
    expect(view.status).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: 5024, done: 5024, failed: 5008 });
    const state = (await queues.jobs.get(id))!;
    expect(state.chunks).toBe(Math.ceil(5024 / 20));
    // The pages recorded before the kill are exactly as they were: the resumed step never re-derived them.
    expect(await queues.jobs.pages(id, 0, atKill.chunks)).toEqual(pagesAtKill);
    expect((await queues.sets.getJob(id))!.stalledCounter).toBeGreaterThanOrEqual(1);

    const manifest = await manifestOf('s3://out/big/');
    expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
    expect(await recordKeys('s3://out/big/')).toEqual(keys);
    for (const e of manifest.images) if (e.error?.code !== expected[e.key]) expect(e.error?.code, e.key).toBe(expected[e.key]);
    for (const p of [b, c]) p.child.kill('SIGTERM');
    await Promise.all([b.exited, c.exited]);
  }, 600_000);

  it('a finaliser killed mid-upload: `detq finalise <id>` writes the complete outputs', async () => {
    const coco = cocoImageNames(4);
    const bad = badFiles();
    const keys = await uploadSet(store, 's3://in/fin/', coco, bad);
    // The worker's S3 goes through a proxy that swallows the upload of manifest.json: every other output is
    // written (summary.json goes last), then the worker is killed while that request hangs.
    const proxy = await holdingProxy(s3.endpoint, (req) => req.method === 'PUT' && (req.url ?? '').startsWith('/out/fin/manifest.json'));
    try {
      const w = worker({ S3_ENDPOINT: proxy.endpoint });
      await ready(w);
      const { id } = await client.enqueue(
        jobSpecSchema.parse({ input: { uri: 's3://in/fin/' }, output: { uri: 's3://out/fin/', formats: ['jsonl', 'coco', 'yolo'] }, chunkSize: 4 }),
      );
      await proxy.held;
      w.child.kill('SIGKILL');
      await w.exited;
      expect(await store.exists('s3://out/fin/detections.jsonl')).toBe(true);
      expect(await store.exists('s3://out/fin/summary.json')).toBe(false);
      expect(await store.exists('s3://out/fin/manifest.json')).toBe(false);
      expect((await client.view(id))!.status).toBe('running');

      const fin = startDetq(['finalise', id, '--json'], env);
      const exit = await fin.exited;
      expect(exit.code, fin.output()).toBe(0);
      const view = (await client.view(id))!;
      expect(view.status).toBe('completed_with_errors');
      expect(view.counts).toEqual({ total: 12, done: 12, failed: 8 });
      const manifest = await manifestOf('s3://out/fin/');
      expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
      expect(await recordKeys('s3://out/fin/')).toEqual(keys);
      for (const e of manifest.images) expect(e.error?.code, e.key).toBe(bad[e.key]?.code);
      const summary = JSON.parse((await store.get('s3://out/fin/summary.json')).toString());
      expect(summary).toMatchObject({ id, status: 'completed_with_errors', counts: { total: 12, labelled: 4, failed: 8 } });
      for (const name of coco) expect(await store.exists(`s3://out/fin/labels/${name.replace('.jpg', '.txt')}`), name).toBe(true);
    } finally {
      proxy.close();
    }
  }, 300_000);
});
