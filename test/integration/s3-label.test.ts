import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRecord } from '@detq/core';
import { detectParamsSchema, runSummarySchema } from '@detq/core';
import { runLocal } from '@detq/pipeline';
import { S3Store } from '@detq/storage';
import { badImages, COCO_IMAGES, cocoImageNames } from '../helpers/fixtures';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';

describe('s3:// input and output against a real S3-protocol server', () => {
  let server: TestS3Server;
  let store: S3Store;
  const saved = { ...process.env };

  beforeAll(async () => {
    server = await startS3Server(['in', 'out']);
    Object.assign(process.env, server.env);
    store = new S3Store();
    for (const f of cocoImageNames(4)) await store.put(`s3://in/set/a/${f}`, await readFile(join(COCO_IMAGES, f)));
    await store.put('s3://in/set/b/empty.jpg', badImages()['empty.jpg']!.bytes);
    await store.put('s3://in/other/ignored.jpg', badImages()['empty.jpg']!.bytes);
  });
  afterAll(async () => {
    store.destroy();
    await server.stop();
    process.env = saved;
  });

  it('lists the prefix, labels it and writes every format back to S3', async () => {
    const summary = await runLocal({
      input: 's3://in/set/',
      out: 's3://out/run1',
      params: detectParamsSchema.parse({}),
      batch: 4,
      formats: ['jsonl', 'coco', 'yolo', 'labelstudio'],
      previews: 1,
    });
    expect(summary).toMatchObject({ counts: { total: 5, labelled: 4, failed: 1 }, errorsByCode: { EMPTY_FILE: 1 } });
    // summary.json goes to S3 beside the other outputs, in the one summary schema.
    expect(runSummarySchema.parse(JSON.parse((await store.get('s3://out/run1/summary.json')).toString()))).toEqual(summary);

    const keys: string[] = [];
    for await (const e of store.list('s3://out/run1/')) keys.push(e.uri);
    expect(keys).toEqual(expect.arrayContaining(['s3://out/run1/detections.jsonl', 's3://out/run1/coco.json', 's3://out/run1/labelstudio.json', 's3://out/run1/labels/classes.txt']));
    expect(keys.filter((k) => k.startsWith('s3://out/run1/previews/'))).toHaveLength(1);

    const records = (await store.get('s3://out/run1/detections.jsonl')).toString().trim().split('\n').map((l) => JSON.parse(l) as ImageRecord);
    expect(records.map((r) => r.key)).toEqual([...cocoImageNames(4).map((f) => `a/${f}`), 'b/empty.jpg']);
    expect(records.slice(0, 4).every((r) => r.detections.length > 0)).toBe(true);
    const coco = JSON.parse((await store.get('s3://out/run1/coco.json')).toString());
    expect(coco.annotations).toHaveLength(records.reduce((n, r) => n + r.detections.length, 0));
  });
});
