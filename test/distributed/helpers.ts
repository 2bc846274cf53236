import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REPO_ROOT } from '@detq/core';
import { badImages, COCO_IMAGES } from '../helpers/fixtures';
import { connectProducerRedis, DetqQueues, type JobClient, type JobView, type QueueConfig } from '@detq/queue';
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

/**
 * The acceptance set's 8 kinds of bad files (one per kind), keyed `bad/<name>`, with their expected codes.
 * Given the set's image names, each bad file is keyed to sort right after one of them instead
 * (`<image>-bad-<name>`, evenly spread), so the bad files land in several chunks.
 */
export function badFiles(spreadAmong?: readonly string[]): Record<string, { bytes: Buffer; code: string }> {
  const { 'header-only.jpg': _sameKindAsTruncated, ...eight } = badImages();
  const entries = Object.entries(eight);
  const step = spreadAmong ? Math.floor(spreadAmong.length / entries.length) : 0;
  return Object.fromEntries(
    entries.map(([name, f], i) => [spreadAmong ? `${spreadAmong[i * step]!.replace(/\.[^.]+$/, '')}-bad-${name}` : `bad/${name}`, f]),
  );
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

export const DETQ_BIN = join(REPO_ROOT, 'apps/cli/bin/detq.js');

export interface DetqProcess {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `node <args>` as a real process, collecting its output. */
export function startNode(args: string[], env: NodeJS.ProcessEnv): DetqProcess {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => out, exited };
}

/** Runs `detq <args>` as a real process. */
export function startDetq(args: string[], env: NodeJS.ProcessEnv): DetqProcess {
  return startNode([DETQ_BIN, ...args], env);
}

export async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** Queues on a producer connection (no offline queue), as the API uses, once the connection is ready. */
export async function producerQueues(config: QueueConfig): Promise<DetqQueues> {
  const redis = connectProducerRedis(config.redisUrl);
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return new DetqQueues(config, redis);
}
