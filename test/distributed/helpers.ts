import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { sharedDir } from '@detq/core';
import type { JobClient, JobView, QueueConfig } from '@detq/queue';
import type { ObjectStore } from '@detq/storage';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const COCO_DIR = join(sharedDir(), 'datasets/coco128/images/train2017');
export const MODEL_PATH = join(sharedDir(), 'models/yolo11n-dyn.onnx');

/** A queue config with a fresh prefix (hash-tagged, as a Redis Cluster deployment would use). */
export function testQueueConfig(): QueueConfig {
  return { redisUrl: REDIS_URL, prefix: `{detqtest-${randomBytes(4).toString('hex')}}` };
}

/** Deletes every key under a test prefix. */
export async function dropPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[{}[\]*?]/g, '\\$&')}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export function cocoImages(count = Infinity): string[] {
  return readdirSync(COCO_DIR)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .slice(0, count);
}

/** Eight kinds of files that are not labelable images, each named for what is wrong with it. */
export function badFiles(): Record<string, Buffer> {
  const jpg = readFileSync(join(COCO_DIR, cocoImages(1)[0]!));
  const png = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(png, 0);
  png.writeUInt32BE(13, 8);
  png.write('IHDR', 12, 'latin1');
  png.writeUInt32BE(200_000, 16);
  png.writeUInt32BE(200_000, 20);
  png.set([8, 2, 0, 0, 0], 24);
  const corrupt = Buffer.from(jpg);
  corrupt.fill(0x00, 600, corrupt.length - 2);
  return {
    'bad/empty.jpg': Buffer.alloc(0),
    'bad/text.jpg': Buffer.from('this is not an image\n'),
    'bad/truncated.jpg': jpg.subarray(0, Math.floor(jpg.length / 3)),
    'bad/corrupt.jpg': corrupt,
    'bad/huge-header.png': png,
    'bad/vector.svg': Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
    'bad/doc.pdf': Buffer.from('%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n'),
    'bad/random.png': randomBytes(4096),
  };
}

/** Uploads coco images (as `<prefix><name>`) and optional extra files; returns the keys written. */
export async function uploadSet(store: ObjectStore, prefix: string, images: string[], extra: Record<string, Buffer> = {}): Promise<string[]> {
  const keys: string[] = [];
  const puts = images.map(async (name) => {
    await store.put(`${prefix}${name}`, readFileSync(join(COCO_DIR, name)));
    keys.push(name);
  });
  await Promise.all(puts);
  for (const [key, body] of Object.entries(extra)) {
    await store.put(`${prefix}${key}`, body);
    keys.push(key);
  }
  return keys.sort();
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const ENDED = ['completed', 'completed_with_errors', 'failed', 'cancelled'];

export function waitForEnd(client: JobClient, id: string, timeoutMs?: number): Promise<JobView> {
  return waitFor(`job ${id} to end`, async () => {
    const v = await client.view(id);
    return v && ENDED.includes(v.status) ? v : undefined;
  }, timeoutMs);
}

export interface Manifest {
  total: number;
  images: { key: string; uri: string; result?: string; line?: number; error?: { code: string; message: string } }[];
}
