import { readFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectParamsSchema, jobSpecSchema, type ImageRecord } from '@detq/core';
import { recordLine } from '@detq/formats';
import { chunkResultKey, DetqQueues, type ChunkImage } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { tempDir } from '../helpers/fixtures';
import { dropPrefix, startDetq, testQueueConfig } from './helpers';

const RECORDS = 200_000;
const PER_CHUNK = 1000;
const RSS_LIMIT_MB = 300;

/** Peak resident memory of a process so far (Linux VmHWM), in MB; undefined once it has exited. */
function peakRssMb(pid: number): number | undefined {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

describe('finaliser: 200,000 records in bounded memory, multipart uploads', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let queues: DetqQueues;
  let tmp: string;
  const config = testQueueConfig();

  beforeAll(async () => {
    s3 = await startS3Server();
    Object.assign(process.env, s3.env);
    store = new S3Store(s3ConfigFromEnv(s3.env));
    queues = new DetqQueues(config);
    tmp = await tempDir('detq-finaliser-tmp-');
  }, 60_000);

  afterAll(async () => {
    await queues?.close();
    await dropPrefix(config.prefix);
    store?.destroy();
    await s3?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it(`detq finalise over ${RECORDS} synthetic records keeps its peak RSS under ${RSS_LIMIT_MB} MB and streams large outputs as multipart uploads`, async () => {
    // A planned job whose chunks all ended: the plan in Redis, the chunk results in S3, as workers leave them.
    const id = 'memtest';
    const output = 's3://out/mem/';
    const spec = jobSpecSchema.parse({ input: { uri: 's3://in/mem/' }, output: { uri: output, formats: ['jsonl', 'coco'] }, chunkSize: PER_CHUNK });
    const model: ImageRecord['model'] = { name: 'yolo11n.onnx', sha256: 'a'.repeat(64), engine: 'onnxruntime-cpu', imgsz: [640, 640] };
    const params = detectParamsSchema.parse({});
    expect(await queues.jobs.create(id, { spec, output })).toBe(true);
    await queues.jobs.setStatus(id, 'running', { startedAt: Date.now() });
    await queues.jobs.update(id, { names: JSON.stringify(['person', 'bicycle', 'car']), model: JSON.stringify(model) });
    for (let c = 0; c < RECORDS / PER_CHUNK; c++) {
      const images: ChunkImage[] = Array.from({ length: PER_CHUNK }, (_, i) => {
        const key = `img/${String(c * PER_CHUNK + i).padStart(7, '0')}.jpg`;
        return { key, uri: `s3://in/mem/${key}` };
      });
      await queues.jobs.recordPage(id, c, { images }, images.at(-1)!.uri, (c + 1) * PER_CHUNK);
      const body = images
        .map(({ key }, i) =>
          recordLine({ key, width: 640, height: 480, detections: [{ box: [10.5, 20.25, 110, 220.75], confidence: 0.87654, class_id: i % 3, class_name: ['person', 'bicycle', 'car'][i % 3]! }], model, params }),
        )
        .join('');
      await store.put(`${output}${chunkResultKey(id, c)}`, body);
    }
    await queues.jobs.update(id, { planned: 1, added: RECORDS / PER_CHUNK });

    const fin = startDetq(['finalise', id], { ...process.env, ...s3.env, REDIS_URL: config.redisUrl, DETQ_QUEUE_PREFIX: config.prefix, TMPDIR: tmp });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, peakRssMb(fin.child.pid!) ?? 0)), 100);
    const exit = await fin.exited;
    clearInterval(sampler);
    expect(exit.code, fin.output()).toBe(0);
    expect(peak).toBeGreaterThan(0);
    expect(peak, `peak RSS ${peak.toFixed(0)} MB`).toBeLessThan(RSS_LIMIT_MB);

    expect(s3.multipartUploads().sort()).toEqual(['mem/coco.json', 'mem/detections.jsonl', 'mem/manifest.json']);
    // The staging folder is gone (tsx keeps its own cache there).
    expect((await readdir(tmp)).filter((d) => d.startsWith('detq-'))).toEqual([]);
    const manifest = JSON.parse((await store.get(`${output}manifest.json`)).toString()) as { total: number; images: { key: string; line: number }[] };
    expect(manifest.total).toBe(RECORDS);
    expect(new Set(manifest.images.map((i) => i.key)).size).toBe(RECORDS);
    expect(manifest.images[RECORDS - 1]).toMatchObject({ key: `img/${String(RECORDS - 1).padStart(7, '0')}.jpg`, line: PER_CHUNK });
    const lines = (await store.get(`${output}detections.jsonl`)).toString().trim().split('\n');
    expect(lines).toHaveLength(RECORDS);
    expect((await queues.jobs.get(id))!.status).toBe('completed');
  }, 600_000);
});
