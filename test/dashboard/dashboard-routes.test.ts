import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, dashboardRoutes, TokenStore } from '@detq/api';
import { detectParamsSchema, jobSpecSchema, type ImageRecord } from '@detq/core';
import { chunkResultKey, DetqQueues, JobStore } from '@detq/queue';
import { S3Store, s3ConfigFromEnv, type ObjectStore } from '@detq/storage';
import { COCO_IMAGES, cocoImageNames } from '../helpers/fixtures';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { dropPrefix, testQueueConfig } from '../distributed/helpers';

/** Counts reads per URI, to see what the thumbnail cache saves. */
class CountingStore implements ObjectStore {
  readonly gets = new Map<string, number>();
  constructor(private readonly inner: ObjectStore) {}
  get(uri: string) {
    this.gets.set(uri, (this.gets.get(uri) ?? 0) + 1);
    return this.inner.get(uri);
  }
  put(uri: string, body: Buffer | string, contentType?: string) {
    return this.inner.put(uri, body, contentType);
  }
  upload(uri: string, open: () => Readable, contentType?: string) {
    return this.inner.upload(uri, open, contentType);
  }
  list(prefixUri: string) {
    return this.inner.list(prefixUri);
  }
  exists(uri: string) {
    return this.inner.exists(uri);
  }
}

const MODEL = { name: 'yolo11n', sha256: 'a'.repeat(64), engine: 'onnxruntime-cpu', imgsz: [640, 640] } as const;
const PARAMS = detectParamsSchema.parse({});
const record = (key: string, width: number, height: number, extra: Partial<ImageRecord> = {}): ImageRecord => ({
  key, width, height, detections: [], model: { ...MODEL, imgsz: [640, 640] }, params: PARAMS, ...extra,
});

describe('dashboard API routes: scope, caps, cache, paging, cron preview', () => {
  let s3: TestS3Server;
  let store: CountingStore;
  let queues: DetqQueues;
  let app: FastifyInstance;
  const config = testQueueConfig();
  const alice = createToken('alice', ['s3://in/*', 's3://out/alice/*']);
  const bob = createToken('bob', ['s3://in/*', 's3://out/bob/*']);
  const [photo, other] = cocoImageNames(2) as [string, string];
  const id = JobStore.newId();
  const get = (url: string, token = alice.token) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    s3 = await startS3Server();
    store = new CountingStore(new S3Store(s3ConfigFromEnv(s3.env)));
    const { width, height } = await sharp(join(COCO_IMAGES, photo)).metadata();
    // A noisy 1600x1600 JPEG is well over the 1 MiB image cap given below.
    const big = await sharp(randomBytes(1600 * 1600 * 3), { raw: { width: 1600, height: 1600, channels: 3 } }).jpeg({ quality: 100 }).toBuffer();
    await store.put(`s3://in/d/${photo}`, readFileSync(join(COCO_IMAGES, photo)));
    await store.put('s3://in/d/big.jpg', big);
    const records = [
      record(photo, width!, height!, { detections: [{ box: [10, 20, 110, 220], confidence: 0.9, class_id: 0, class_name: 'person' }, { box: [5, 5, 50, 50], confidence: 0.3, class_id: 2, class_name: 'car' }] }),
      record('big.jpg', 1600, 1600, { detections: [{ box: [0, 0, 10, 10], confidence: 0.5, class_id: 2, class_name: 'car' }] }),
      record('bad/empty.jpg', 0, 0, { error: { code: 'EMPTY_FILE', message: 'the file is empty (0 bytes)' } }),
    ];
    await store.put(`s3://out/alice/d/${chunkResultKey(id, 0)}`, records.map((r) => JSON.stringify(r)).join('\n'));
    await store.put('s3://out/alice/d/summary.json', JSON.stringify({ files: [] }));
    queues = new DetqQueues(config);
    const spec = jobSpecSchema.parse({ input: { uri: 's3://in/d/' }, output: { uri: 's3://out/alice/d/' } });
    await queues.jobs.create(id, { spec, output: spec.output.uri, principal: 'alice' });
    // Two chunks planned, one written: the job is still running.
    await queues.jobs.update(id, { total: records.length + 5, chunks: 2 });
    app = Fastify();
    await app.register(dashboardRoutes, { queues, tokens: new TokenStore([alice.entry, bob.entry]), store, maxImageBytes: 1024 * 1024, maxDownloadBytes: 1024 });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await queues?.close();
    await dropPrefix(config.prefix);
    await s3?.stop();
  });

  it('401 without a token; 404 for a job outside the token scopes, on every job route', async () => {
    expect((await get(`/v1/jobs/${id}/records`, 'nope')).statusCode).toBe(401);
    expect((await get('/v1/workers', 'nope')).statusCode).toBe(401);
    for (const path of ['detail', 'records', `image?key=${photo}`, 'throughput', 'file?uri=s3://out/alice/d/summary.json']) {
      const res = await get(`/v1/jobs/${id}/${path}`, bob.token);
      expect([path, res.statusCode, res.json()]).toEqual([path, 404, { error: 'no such job' }]);
    }
  });

  it('records (of the chunks written so far): paged, filtered by class and confidence, errors only, with counts by class and code', async () => {
    const all = (await get(`/v1/jobs/${id}/records`)).json();
    expect(all).toMatchObject({ total: 3, written: 3, classes: { person: 1, car: 2 }, errors: { EMPTY_FILE: 1 } });
    const cars = (await get(`/v1/jobs/${id}/records?class=car&minConfidence=0.4`)).json();
    expect(cars.records.map((r: ImageRecord) => [r.key, r.detections.map((d) => d.class_name)])).toEqual([['big.jpg', ['car']]]);
    const page2 = (await get(`/v1/jobs/${id}/records?offset=1&limit=1`)).json();
    expect([page2.total, page2.records.map((r: ImageRecord) => r.key)]).toEqual([3, ['big.jpg']]);
    const errors = (await get(`/v1/jobs/${id}/records?errorsOnly=true`)).json();
    expect(errors.records).toEqual([{ key: 'bad/empty.jpg', width: 0, height: 0, detections: [], error: { code: 'EMPTY_FILE', message: 'the file is empty (0 bytes)' } }]);
    const bad = await get(`/v1/jobs/${id}/records?limit=500&errorsOnly=maybe&colour=red`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().fields.map((f: { field: string }) => f.field).sort()).toEqual(['colour', 'errorsOnly', 'limit']);
  });

  it('image: a sharp JPEG thumbnail (≤ 320 px) or full view (≤ 1600 px), cached; refused when not in the job, failed, or over the cap', async () => {
    const thumb = await get(`/v1/jobs/${id}/image?key=${photo}`);
    expect([thumb.statusCode, thumb.headers['content-type']]).toEqual([200, 'image/jpeg']);
    const meta = await sharp(thumb.rawPayload).metadata();
    expect([meta.format, Math.max(meta.width!, meta.height!)]).toEqual(['jpeg', 320]);
    const again = await get(`/v1/jobs/${id}/image?key=${photo}`);
    expect(again.rawPayload.equals(thumb.rawPayload)).toBe(true);
    expect(store.gets.get(`s3://in/d/${photo}`)).toBe(1);
    const full = await sharp((await get(`/v1/jobs/${id}/image?key=${photo}&size=full`)).rawPayload).metadata();
    expect(full.width).toBe((await sharp(join(COCO_IMAGES, photo)).metadata()).width);

    expect((await get(`/v1/jobs/${id}/image?key=${other}`)).statusCode).toBe(404);
    expect((await get(`/v1/jobs/${id}/image?key=bad/empty.jpg`)).statusCode).toBe(404);
    const big = await get(`/v1/jobs/${id}/image?key=big.jpg`);
    expect([big.statusCode, big.json().error]).toEqual([413, `s3://in/d/big.jpg is larger than ${1024 * 1024} bytes`]);
    expect(store.gets.has('s3://in/d/big.jpg')).toBe(false);
  });

  it('file: only objects under the job output, within the download cap', async () => {
    const summary = await get(`/v1/jobs/${id}/file?uri=s3://out/alice/d/summary.json`);
    expect([summary.statusCode, summary.json()]).toEqual([200, { files: [] }]);
    expect((await get(`/v1/jobs/${id}/file?uri=s3://in/d/${photo}`)).statusCode).toBe(400);
    expect((await get(`/v1/jobs/${id}/file?uri=s3://out/alice/d/../x`)).statusCode).toBe(400);
    expect((await get(`/v1/jobs/${id}/file?uri=s3://out/alice/d/${chunkResultKey(id, 0)}`)).statusCode).toBe(413);
  });

  it('cron preview: the next runs from the parser BullMQ uses; a bad pattern is a field error', async () => {
    const res = (await get('/v1/cron/next?cron=0%202%20*%20*%20*&tz=UTC&count=3')).json() as { next: string[] };
    expect(res.next).toHaveLength(3);
    for (const at of res.next) expect(at).toMatch(/T02:00:00\.000Z$/);
    expect(Date.parse(res.next[1]!) - Date.parse(res.next[0]!)).toBe(86_400_000);
    const bad = await get('/v1/cron/next?cron=61%20*%20*%20*%20*');
    expect([bad.statusCode, bad.json().fields[0].field]).toEqual([400, 'cron']);
  });

  it('serves the dashboard at /ui with a CSP that loads nothing from elsewhere', async () => {
    expect((await app.inject('/ui')).headers.location).toBe('/ui/');
    const index = await app.inject('/ui/');
    expect([index.statusCode, index.headers['content-type']]).toEqual([200, 'text/html; charset=utf-8']);
    expect(index.headers['content-security-policy']).toContain("default-src 'self'");
    expect(index.body).not.toMatch(/https?:\/\//);
    const js = await app.inject('/ui/app.js');
    expect([js.statusCode, js.headers['content-type']]).toEqual([200, 'text/javascript; charset=utf-8']);
    expect((await app.inject('/ui/style.css')).statusCode).toBe(200);
  });
});
