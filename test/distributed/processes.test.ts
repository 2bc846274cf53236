import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '@detq/api';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { cocoImageNames, tempDir } from '../helpers/fixtures';
import { badFiles, dropPrefix, freePort, startDetq, testQueueConfig, uploadSet, waitFor, waitForEnd, type DetqProcess, type Manifest } from './helpers';

type Coco = { images: { id: number; file_name: string }[]; annotations: { image_id: number; category_id: number; bbox: number[]; score: number }[] };

/** Detections per file name, sorted, for comparing two COCO files whose image ids may differ. */
function byFile(coco: Coco): Map<string, { category_id: number; bbox: number[]; score: number }[]> {
  const names = new Map(coco.images.map((i) => [i.id, i.file_name]));
  const out = new Map<string, { category_id: number; bbox: number[]; score: number }[]>();
  for (const i of coco.images) out.set(i.file_name, []);
  for (const a of coco.annotations) out.get(names.get(a.image_id)!)!.push({ category_id: a.category_id, bbox: a.bbox, score: a.score });
  for (const list of out.values()) list.sort((a, b) => b.score - a.score || a.category_id - b.category_id || a.bbox[0]! - b.bbox[0]!);
  return out;
}

describe('processes: detq api + two detq workers over the 136-file acceptance set', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let queues: DetqQueues;
  let client: JobClient;
  let env: NodeJS.ProcessEnv;
  let api: DetqProcess;
  let base: string;
  let keys: string[];
  let dir: string;
  const token = createToken('ci', ['s3://in/*', 's3://out/*']);
  const config = testQueueConfig();
  // Bad files sort among the coco images, so they land in several chunks.
  const bad = badFiles(cocoImageNames());
  const procs: DetqProcess[] = [];
  const worker = () => {
    const p = startDetq(['worker'], env);
    procs.push(p);
    return p;
  };
  const ready = (p: DetqProcess) => waitFor('a worker to load its model', async () => (/detq worker: .* concurrency/.test(p.output()) ? true : undefined), 60_000);
  const enqueue = async (output: string) => {
    const res = await fetch(`${base}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { uri: 's3://in/set/' }, output: { uri: output, formats: ['jsonl', 'coco', 'yolo', 'labelstudio'] }, chunkSize: 16 }),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  };
  const manifestOf = async (output: string) => JSON.parse((await store.get(`${output}manifest.json`)).toString()) as Manifest;

  beforeAll(async () => {
    s3 = await startS3Server();
    Object.assign(process.env, s3.env);
    store = new S3Store(s3ConfigFromEnv(s3.env));
    keys = await uploadSet(store, 's3://in/set/', cocoImageNames(), bad);
    dir = await tempDir('detq-dist-');
    const tokensFile = join(dir, 'tokens.json');
    await writeFile(tokensFile, JSON.stringify([token.entry]));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = {
      ...process.env,
      ...s3.env,
      REDIS_URL: config.redisUrl,
      DETQ_QUEUE_PREFIX: config.prefix,
      DETQ_API_TOKENS_FILE: tokensFile,
      DETQ_API_PORT: String(port),
      DETQ_API_HOST: '127.0.0.1',
      // Two workers share two cores; short locks so a killed worker's chunk is retried within seconds.
      DETQ_THREADS: '1',
      DETQ_LOCK_MS: '4000',
      DETQ_PROGRESS_MS: '250',
      DETQ_STATS_MS: '500',
      // The shared test Redis may run without persistence; durability has its own test (worker-faults).
      DETQ_ALLOW_VOLATILE_REDIS: '1',
    };
    queues = new DetqQueues(config);
    client = new JobClient(queues);
    api = startDetq(['api'], env);
    await waitFor('the API', async () => ((await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
  }, 120_000);

  afterAll(async () => {
    for (const p of [api, ...procs]) if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await queues?.close();
    await dropPrefix(config.prefix);
    store?.destroy();
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ends completed_with_errors; manifest lists all 136 once; COCO equals `detq label`; watch shows progress; SIGTERM exits 0', async () => {
    const [a, b] = [worker(), worker()];
    await Promise.all([ready(a), ready(b)]);
    const id = await enqueue('s3://out/run1/');
    const watch = startDetq(['watch', id, '--interval', '200'], env);
    const watched = await watch.exited;
    expect(watched.code, watch.output()).toBe(0);
    const progressLines = watch.output().split('\n').filter((l) => l.startsWith(id));
    expect(progressLines.some((l) => /\b(\d+)\/136\b/.test(l) && !/ 0\/136 | 136\/136 /.test(` ${l} `))).toBe(true);
    expect(progressLines.at(-1)).toContain('completed_with_errors 136/136');

    const view = await waitForEnd(client, id);
    expect(view.status).toBe('completed_with_errors');
    expect(view.counts).toEqual({ total: 136, done: 136, failed: 8 });
    const manifest = await manifestOf('s3://out/run1/');
    expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
    for (const e of manifest.images) expect(e.error?.code, e.key).toBe(bad[e.key]?.code);
    const badChunks = new Set(manifest.images.filter((e) => e.key in bad).map((e) => Math.floor(keys.indexOf(e.key) / 16)));
    expect(badChunks.size).toBeGreaterThan(1);
    const summary = JSON.parse((await store.get('s3://out/run1/summary.json')).toString());
    expect(summary.counts).toMatchObject({ total: 136, labelled: 128, failed: 8 });
    // Both workers took part: each reported frames to the metrics hash.
    const workers = await queues.metrics.workers();
    expect(Object.values(workers).filter((w) => w.frames > 0)).toHaveLength(2);

    const local = join(dir, 'label');
    const label = startDetq(['label', 's3://in/set/', '--out', local, '--formats', 'coco'], env);
    expect((await label.exited).code, label.output()).toBe(0);
    const mine = byFile(JSON.parse((await store.get('s3://out/run1/coco.json')).toString()) as Coco);
    const theirs = byFile(JSON.parse(await readFile(join(local, 'coco.json'), 'utf8')) as Coco);
    expect([...mine.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [file, dets] of mine) {
      const other = theirs.get(file)!;
      expect(dets.length, file).toBe(other.length);
      dets.forEach((d, i) => {
        expect(d.category_id).toBe(other[i]!.category_id);
        d.bbox.forEach((v, j) => expect(Math.abs(v - other[i]!.bbox[j]!)).toBeLessThanOrEqual(0.02));
        expect(Math.abs(d.score - other[i]!.score)).toBeLessThanOrEqual(1e-4);
      });
    }

    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);
  }, 240_000);

  it('a worker SIGKILLed mid-chunk: 0 lost, 0 duplicated; a worker SIGTERMed mid-run drains and exits 0', async () => {
    const [a, b] = [worker(), worker()];
    await Promise.all([ready(a), ready(b)]);
    const id = await enqueue('s3://out/run2/');
    await waitFor('the first images to be done', async () => (((await client.view(id))?.counts.done ?? 0) > 0 ? true : undefined));
    a.child.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    // A third worker joins, then B is told to stop while it is labelling: it finishes its chunks first.
    const c = worker();
    await ready(c);
    b.child.kill('SIGTERM');
    const stopped = await b.exited;
    expect(stopped.code, b.output()).toBe(0);
    expect(b.output()).toContain('drained');

    const view = await waitForEnd(client, id, 120_000);
    expect(view.status).toBe('completed_with_errors');
    // The kill did land mid-chunk: some chunk was taken back from the dead worker and run again.
    const chunks = (await queues.chunks.getJobs(['completed'])).filter((j) => j.data.setId === id);
    expect(chunks.some((j) => j.stalledCounter > 0 || j.attemptsStarted > 1)).toBe(true);
    const manifest = await manifestOf('s3://out/run2/');
    expect(manifest.images.map((i) => i.key).sort()).toEqual(keys);
    const lines = (await store.get('s3://out/run2/detections.jsonl')).toString().trim().split('\n');
    const recordKeys = lines.map((l) => (JSON.parse(l) as { key: string }).key);
    expect(recordKeys.sort()).toEqual(keys);
    expect(manifest.images.filter((i) => i.error).map((i) => i.key).sort()).toEqual(Object.keys(bad).sort());
    for (const e of manifest.images) expect(e.error?.code, e.key).toBe(bad[e.key]?.code);
    c.child.kill('SIGTERM');
    expect((await c.exited).code).toBe(0);
  }, 240_000);
});
