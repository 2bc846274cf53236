import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, resolveModel } from '@detq/pipeline';
import { MODEL_DYN, MODEL_INT8_320, tempDir } from '../helpers/fixtures';

describe('model resolution', () => {
  let server: Server;
  let base: string;
  let hits = 0;
  let model: Buffer;

  beforeAll(async () => {
    model = await readFile(MODEL_INT8_320);
    server = createServer((req, res) => {
      hits++;
      if (req.url === '/model.onnx') res.end(model);
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
});
