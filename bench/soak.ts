// npm run bench:soak — Redis memory across many small jobs: 1,000 one-image jobs (an empty .jpg, which fails
// fast with EMPTY_FILE, so the run measures the queue, not inference) through one in-process worker, with
// DETQ_JOB_TTL at a few seconds. Prints Redis used_memory and key count every 100 jobs: with retention they
// stay flat instead of growing with the number of jobs. Starts its own redis-server and S3 server.
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { jobSpecSchema, TERMINAL_STATUSES } from '@detq/core';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { createWorker, workerSettingsFromEnv } from '@detq/worker';
import { startS3Server } from '../test/helpers/s3-server';

const JOBS = Number(process.env.SOAK_JOBS ?? 1000);
const TTL = Number(process.env.SOAK_TTL ?? 5);
const PARALLEL = 8;

async function privateRedis(): Promise<string> {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  const dir = await mkdtemp(join(tmpdir(), 'detq-soak-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  process.once('exit', () => child.kill());
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { retryStrategy: () => 100, maxRetriesPerRequest: null });
  probe.on('error', () => {});
  await probe.ping();
  probe.disconnect();
  return url;
}

const redisUrl = await privateRedis();
const prefix = '{detqsoak}';
const s3 = await startS3Server();
Object.assign(process.env, s3.env);
const store = new S3Store(s3ConfigFromEnv(s3.env));
await store.put('s3://in/soak/empty.jpg', Buffer.alloc(0));
const queue = { redisUrl, prefix, jobTtlSeconds: TTL };
const worker = await createWorker(
  { ...workerSettingsFromEnv(process.env), queue, progressIntervalMs: 500, sweepIntervalMs: 1000, statsIntervalMs: 5000 },
  { log: () => {} },
);
const queues = new DetqQueues(queue);
const client = new JobClient(queues);
const redis = new Redis(redisUrl);
const sample = async () => ({
  memory: Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]),
  keys: await redis.dbsize(),
});

const rows: { jobs: number; memory: number; keys: number }[] = [];
const t0 = performance.now();
let done = 0;
const run = async (i: number) => {
  const spec = jobSpecSchema.parse({ input: { uri: 's3://in/soak/' }, output: { uri: `s3://out/soak/${i % PARALLEL}/` } });
  const { id } = await client.enqueue(spec);
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    if (TERMINAL_STATUSES.includes((await queues.jobs.status(id))!)) break;
  }
  done++;
};
for (let i = 0; i < JOBS; i += PARALLEL) {
  // Each slot writes to its own output prefix: one live job per prefix.
  await Promise.all(Array.from({ length: Math.min(PARALLEL, JOBS - i) }, (_, j) => run(i + j)));
  if (done % 100 < PARALLEL || done === JOBS) rows.push({ jobs: done, ...(await sample()) });
}
const seconds = (performance.now() - t0) / 1000;
// Past the TTL, after a sweep: what is left of 1,000 jobs.
await new Promise((r) => setTimeout(r, (TTL + 2) * 1000));
rows.push({ jobs: done, ...(await sample()) });
// What is left, by kind (ids replaced by *).
const kinds = new Map<string, number>();
for (const key of await redis.keys('*')) {
  const kind = key.replace(prefix, '').replace(/:[0-9a-z]{18,}(-c\d+)?\b/g, ':*').replace(/:\d+$/, ':*');
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
}

await worker.close();
await queues.close();
redis.disconnect();
store.destroy();
await s3.stop();

console.log(`detq bench:soak — ${JOBS} one-image jobs in ${seconds.toFixed(1)} s, DETQ_JOB_TTL=${TTL}s, ${PARALLEL} at a time`);
console.log('jobs ended   Redis used_memory   keys');
for (const [i, r] of rows.entries())
  console.log(`${String(r.jobs).padStart(10)}   ${`${(r.memory / 1024 / 1024).toFixed(2)} MiB`.padStart(17)}   ${String(r.keys).padStart(4)}${i === rows.length - 1 ? `   (${TTL + 2} s after the last job)` : ''}`);
const first = rows.find((r) => r.jobs >= 200) ?? rows[0]!;
const last = rows.at(-1)!;
console.log(`keys left: ${[...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
console.log(`memory from ${first.jobs} to ${JOBS} jobs: ${((last.memory / first.memory - 1) * 100).toFixed(1)}% (flat means retention works)`);
process.exit(0);
