// End to end through a real worker process on one device: a real S3-protocol server (s3rver) on
// loopback, Redis at $REDIS_URL, `detq worker --engine <engine> --device <n>` as a child process, one
// job of every image in <dir>; checks the job, its outputs and the worker's metrics, then drains it.
//   node --import tsx infra/scripts/gpu-worker-e2e.ts --engine torch --device 0 --model m.torchscript --images dir
// Exits non-zero on any failed check. infra/scripts/device-e2e.sh runs it on the GPU machine.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { jobSpecSchema, REPO_ROOT } from '@detq/core';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { startS3Server } from '../../test/helpers/s3-server';

const { values: o } = parseArgs({ options: { engine: { type: 'string', default: 'torch' }, device: { type: 'string', default: '0' }, model: { type: 'string' }, images: { type: 'string' }, half: { type: 'boolean', default: false } } });
if (!o.model || !o.images) throw new Error('--model and --images are required');

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(250)) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}
const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

const s3 = await startS3Server();
Object.assign(process.env, s3.env);
const store = new S3Store(s3ConfigFromEnv(s3.env));
const prefix = `{detq-e2e-${randomBytes(4).toString('hex')}}`;
const queues = new DetqQueues({ redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', prefix });
const names = readdirSync(o.images).filter((n) => /\.jpe?g$/i.test(n)).sort();
let worker: ReturnType<typeof spawn> | undefined;
try {
  for (const n of names) await store.put(`s3://in/set/${n}`, readFileSync(join(o.images, n)));
  const port = await freePort();
  const env = { ...process.env, ...s3.env, DETQ_QUEUE_PREFIX: prefix, DETQ_MODEL: o.model, DETQ_WORKER_PORT: String(port), DETQ_STATS_MS: '500' };
  const args = ['apps/cli/bin/detq.js', 'worker', '--engine', o.engine!, '--device', o.device!, ...(o.half ? ['--half'] : [])];
  console.log(`starting: DETQ_MODEL=${o.model} node ${args.join(' ')}`);
  worker = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((r) => worker!.once('exit', (code) => r(code)));
  await until('the worker to be ready (/readyz)', async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined), 300_000);

  const spec = jobSpecSchema.parse({ input: { uri: 's3://in/set/' }, output: { uri: 's3://out/set/', formats: ['jsonl', 'coco'] }, chunkSize: 8 });
  const started = Date.now();
  const client = new JobClient(queues);
  const { id } = await client.enqueue(spec);
  const view = await until('the job to end', async () => {
    const v = await client.view(id);
    return v && ['completed', 'completed_with_errors', 'failed', 'cancelled'].includes(v.status) ? v : undefined;
  }, 300_000);
  console.log(`job ${id}: ${view.status} ${JSON.stringify(view.counts)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  check(view.status === 'completed', `job completed (${view.status})`);
  check(view.counts.total === names.length && view.counts.done === names.length && view.counts.failed === 0, `all ${names.length} images labelled, none failed`);
  const manifest = JSON.parse((await store.get('s3://out/set/manifest.json')).toString()) as { images: { key: string; error?: unknown }[] };
  check(JSON.stringify(manifest.images.map((i) => i.key).sort()) === JSON.stringify(names), 'manifest lists every image exactly once');
  const records = (await store.get('s3://out/set/detections.jsonl')).toString().trim().split('\n').map((l) => JSON.parse(l) as { key: string; detections: unknown[] });
  check(records.length === names.length, `detections.jsonl has one record per image (${records.length})`);
  const boxes = records.reduce((n, r) => n + r.detections.length, 0);
  check(boxes > names.length, `detections found (${boxes} boxes)`);
  const summary = JSON.parse((await store.get('s3://out/set/summary.json')).toString()) as Record<string, unknown>;
  console.log(`summary provenance: ${JSON.stringify(summary.provenance ?? summary.model ?? summary, null, 0).slice(0, 600)}`);
  check(JSON.stringify(summary).includes(`"${o.engine}"`), `summary names the ${o.engine} engine`);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const frames = new RegExp(`^detq_worker_frames_total\\{device="gpu${o.device}"\\} (\\d+)$`, 'm').exec(metrics);
  check(Number(frames?.[1]) === names.length, `worker metrics count its frames on gpu${o.device} (${frames?.[1]})`);

  worker.kill('SIGTERM');
  check((await exited) === 0, 'SIGTERM: the worker drained and exited 0');
  worker = undefined;
  console.log('E2E PASSED');
} finally {
  worker?.kill('SIGKILL');
  // Leave nothing behind under the run's prefix.
  const redis = queues.redis as import('ioredis').Redis;
  for (let cursor = '0'; ; ) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[{}]/g, '\\$&')}:*`, 'COUNT', 1000);
    if (keys.length) await redis.unlink(...keys);
    if ((cursor = next) === '0') break;
  }
  await queues.close();
  store.destroy();
  await s3.stop();
}
