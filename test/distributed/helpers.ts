import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { badImages, COCO_IMAGES } from '../helpers/fixtures';
import type { JobClient, JobView, QueueConfig } from '@detq/queue';
import type { ObjectStore } from '@detq/storage';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

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

/** The acceptance set's 8 kinds of bad files (one per kind), keyed `bad/<name>`, with their expected codes. */
export function badFiles(): Record<string, { bytes: Buffer; code: string }> {
  const { 'header-only.jpg': _sameKindAsTruncated, ...eight } = badImages();
  return Object.fromEntries(Object.entries(eight).map(([name, f]) => [`bad/${name}`, f]));
}

/** Uploads coco images (as `<prefix><name>`) and optional extra files; returns the keys written. */
export async function uploadSet(store: ObjectStore, prefix: string, images: string[], extra: Record<string, { bytes: Buffer }> = {}): Promise<string[]> {
  await Promise.all(images.map((name) => store.put(`${prefix}${name}`, readFileSync(join(COCO_IMAGES, name)))));
  for (const [key, { bytes }] of Object.entries(extra)) await store.put(`${prefix}${key}`, bytes);
  return [...images, ...Object.keys(extra)].sort();
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
  images: { key: string; uri: string; result?: string; line?: number; skipped?: true; error?: { code: string; message: string } }[];
}
