import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, fetchToCache, resolveModel } from '@detq/pipeline';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { MODEL_DYN, MODEL_INT8_320, tempDir } from '../helpers/fixtures';
import { startFaultProxy } from '../helpers/fault-proxy';
import { startS3Server } from '../helpers/s3-server';

describe('model resolution', () => {
  let server: Server;
  let base: string;
  let hits = 0;
  let model: Buffer;

  beforeAll(async () => {
    model = await readFile(MODEL_INT8_320);
    let flaky = 0;
    server = createServer((req, res) => {
      hits++;
      if (req.url === '/model.onnx') res.end(model);
      // Fails twice with a 503, then serves: a transient outage of the model host.
      else if (req.url === '/flaky.onnx') (flaky++ < 2 ? res.writeHead(503).end() : res.end(model));
      else if (req.url === '/slow.onnx') setTimeout(() => res.end(model), 300);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('prefers --model, then DETQ_MODEL, then the shared model', async () => {
    expect((await resolveModel({ model: MODEL_INT8_320, env: { DETQ_MODEL: MODEL_DYN } })).source).toBe('flag');
    const fromEnv = await resolveModel({ env: { DETQ_MODEL: MODEL_INT8_320 } });
    expect(fromEnv).toMatchObject({ source: 'env', name: 'yolo11n_int8_320.onnx' });
    expect(fromEnv.metadata.imgsz).toEqual([320, 320]);
    const shared = await resolveModel({ env: {} });
    expect(shared).toMatchObject({ source: 'shared', sha256: DEFAULT_MODEL.sha256 });
    expect(shared.metadata.names).toHaveLength(80);
  });

  it('downloads a model once into the cache, checked against its sha256', async () => {
    const sha256 = createHash('sha256').update(model).digest('hex');
    const env = { DETQ_CACHE_DIR: await tempDir() };
    const first = await resolveModel({ model: `${base}/model.onnx`, sha256, env });
    expect(first).toMatchObject({ sha256, source: 'flag' });
    expect(first.path.startsWith(env.DETQ_CACHE_DIR)).toBe(true);
    const before = hits;
    await resolveModel({ model: `${base}/model.onnx`, sha256, env });
    expect(hits).toBe(before);
  });

  it('refuses a download whose sha256 does not match, and an unreachable one', async () => {
    const env = { DETQ_CACHE_DIR: await tempDir() };
    await expect(resolveModel({ model: `${base}/model.onnx`, sha256: '0'.repeat(64), env })).rejects.toThrow(/expected 0{64}: refusing/);
    await expect(resolveModel({ model: `${base}/missing.onnx`, env })).rejects.toThrow(/HTTP 404/);
  });

  it('falls back to the pinned download URL when no shared folder exists', async () => {
    const sha256 = createHash('sha256').update(model).digest('hex');
    const env = { DETQ_SHARED_DIR: await tempDir(), DETQ_CACHE_DIR: await tempDir(), DETQ_MODEL_URL: `${base}/model.onnx`, DETQ_MODEL_SHA256: sha256 };
    const saved = process.env.DETQ_SHARED_DIR;
    process.env.DETQ_SHARED_DIR = env.DETQ_SHARED_DIR;
    try {
      expect(await resolveModel({ env })).toMatchObject({ source: 'download', sha256 });
    } finally {
      if (saved === undefined) delete process.env.DETQ_SHARED_DIR;
      else process.env.DETQ_SHARED_DIR = saved;
    }
  });

  const sha256 = () => createHash('sha256').update(model).digest('hex');

  it('retries a model host that answers 503 (transient) instead of failing the model for good', async () => {
    const env = { DETQ_CACHE_DIR: await tempDir(), DETQ_S3_OUTAGE_BUDGET_MS: '60000' };
    const got = await resolveModel({ model: `${base}/flaky.onnx`, sha256: sha256(), env });
    expect(got.sha256).toBe(sha256());
  });

  it('retries an S3 model while S3 refuses connections; a missing S3 model is BAD_MODEL at once', async () => {
    const s3 = await startS3Server(['models']);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    const env = { ...s3.env, S3_ENDPOINT: proxy.endpoint, DETQ_S3_OUTAGE_BUDGET_MS: '60000', DETQ_CACHE_DIR: await tempDir() };
    const store = new S3Store(s3ConfigFromEnv(env), { outageBudgetMs: 60_000 });
    try {
      await store.put('s3://models/m.onnx', model);
      await proxy.set('refuse');
      const fetching = fetchToCache('s3://models/m.onnx', sha256(), env, store);
      await new Promise((r) => setTimeout(r, 2000));
      await proxy.set('pass');
      const path = await fetching;
      expect(createHash('sha256').update(await readFile(path)).digest('hex')).toBe(sha256());
      await expect(fetchToCache('s3://models/missing.onnx', undefined, env, store)).rejects.toMatchObject({ code: 'BAD_MODEL' });
    } finally {
      store.destroy();
      await proxy.close();
      await s3.stop();
    }
  });

  it('concurrent fetches of one model each write their own temp file and agree on the result', async () => {
    const env = { DETQ_CACHE_DIR: await tempDir() };
    const paths = await Promise.all(Array.from({ length: 4 }, () => fetchToCache(`${base}/slow.onnx`, sha256(), env)));
    expect(new Set(paths).size).toBe(1);
    expect(createHash('sha256').update(await readFile(paths[0]!)).digest('hex')).toBe(sha256());
    expect((await readdir(dirname(paths[0]!))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('re-verifies a cached model on every hit: a corrupted cache file is fetched again', async () => {
    const env = { DETQ_CACHE_DIR: await tempDir() };
    for (const pinned of [sha256(), undefined]) {
      const path = await fetchToCache(`${base}/model.onnx`, pinned, env);
      await writeFile(path, Buffer.from('bit rot'));
      const before = hits;
      expect(await fetchToCache(`${base}/model.onnx`, pinned, env)).toBe(path);
      expect(hits).toBe(before + 1);
      expect(createHash('sha256').update(await readFile(path)).digest('hex')).toBe(sha256());
      // An intact cache file is not fetched again.
      await fetchToCache(`${base}/model.onnx`, pinned, env);
      expect(hits).toBe(before + 1);
    }
  });
});
