// npm run bench:queue — the distributed path's overheads on a 2,000-image set, measured in one run on this
// machine: Redis commands per image (headline: what Redis itself executed, from INFO commandstats, every
// command a Lua script runs included), S3 PUTs per image, and worker img/s relative to `detq label` on the
// same images with the same threads and batch. Starts its own S3 server and its own redis-server (so no
// other client's commands are counted); BENCH_REDIS_URL uses an existing Redis instead.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { detectParamsSchema, jobSpecSchema, sharedDir, TERMINAL_STATUSES } from '@detq/core';
import { runLocal } from '@detq/pipeline';
import { DetqQueues, JobClient } from '@detq/queue';
import { S3Store, s3ConfigFromEnv } from '@detq/storage';
import { createWorker, workerSettingsFromEnv } from '@detq/worker';
import { startS3Server } from '../test/helpers/s3-server';

const N = Number(process.env.BENCH_IMAGES ?? 2000);
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const batch = Number(process.env.BENCH_BATCH ?? 8);
const redisUrl = process.env.BENCH_REDIS_URL ?? (await privateRedis());

/** A redis-server of our own on a free port, stopped when this process exits. */
async function privateRedis(): Promise<string> {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  const dir = await mkdtemp(join(tmpdir(), 'detq-bench-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  process.once('exit', () => child.kill());
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { retryStrategy: () => 100, maxRetriesPerRequest: null });
  probe.on('error', () => {}); // refused until the server is up
  await probe.ping();
  probe.disconnect();
  return url;
}
const prefix = `{detqbench-${process.pid}}`;
const dir = join(sharedDir(), 'datasets/coco128/images/train2017');
const input = 's3://in/bench/';

const s3 = await startS3Server();
Object.assign(process.env, s3.env);
const store = new S3Store(s3ConfigFromEnv(s3.env));
const names = (await readdir(dir)).filter((f) => f.endsWith('.jpg')).sort();
const bytes = await Promise.all(names.map((n) => readFile(join(dir, n))));
// The coco128 images, cycled to N distinct keys.
for (let i = 0; i < N; i += 32)
  await Promise.all(
    Array.from({ length: Math.min(32, N - i) }, (_, j) => store.put(`${input}${String(i + j).padStart(5, '0')}-${names[(i + j) % names.length]}`, bytes[(i + j) % bytes.length]!)),
  );

// `detq label` on the same S3 prefix (what the CLI runs), after a warm-up.
const params = detectParamsSchema.parse({});
const out = join(tmpdir(), `detq-bench-queue-${process.pid}`);
await runLocal({ input: `${input}0000`, out, params, batch, threads, formats: ['jsonl'], previews: 0 });
const local = await runLocal({ input, out, params, batch, threads, formats: ['jsonl', 'coco'], previews: 0 });
await rm(out, { recursive: true, force: true });

// One worker with the same threads and batch, through Redis and S3 end to end.
// Every command any ioredis client of this process sends (BullMQ's scripts count once, as EVALSHA).
const sent = new Map<string, number>();
const sendCommand = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (this: Redis, command, stream) {
  const c = command as unknown as { name: string };
  sent.set(c.name, (sent.get(c.name) ?? 0) + 1);
  return sendCommand.call(this, command, stream);
};
const sentTotal = () => [...sent.values()].reduce((a, b) => a + b, 0);
const redis = new Redis(redisUrl);
const worker = await createWorker(
  { ...workerSettingsFromEnv(process.env), queue: { redisUrl, prefix }, threads, maxBatch: batch },
  { log: () => {} },
);
const queues = new DetqQueues({ redisUrl, prefix });
const client = new JobClient(queues);
const commands = async () => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))![1]);
/** Calls per command from INFO commandstats: counts every command Redis ran, inside scripts too. */
const commandStats = async () => {
  const calls = new Map<string, number>();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return calls;
};
const spec = jobSpecSchema.parse({ input: { uri: input }, output: { uri: 's3://out/bench/', formats: ['jsonl', 'coco'] } });

// A warm-up job first, as a deployed worker is warm: connections set up, engine loaded, scripts cached.
const waitEnd = async (jobId: string, onPoll = () => {}) => {
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    onPoll();
    const status = await redis.hget(`${prefix}:detq:job:${jobId}`, 'status');
    if (TERMINAL_STATUSES.includes(status as never)) return;
  }
};
await waitEnd((await client.enqueue(jobSpecSchema.parse({ input: { uri: `${input}0000` }, output: { uri: 's3://out/warm/' } }))).id);

const putsBefore = s3.puts();
const commandsBefore = await commands();
const statsBefore = await commandStats();
const sentBefore = sentTotal();
const sentByName = new Map(sent);
const t0 = performance.now();
const t0Epoch = Date.now();
const { id } = await client.enqueue(spec);
let polls = 0;
await waitEnd(id, () => polls++);
const seconds = (performance.now() - t0) / 1000;
// Our own polling (one HGET a second) and the INFO calls are not the system's cost.
const sentByJob = sentTotal() - sentBefore - polls;
const redisCommands = (await commands()) - commandsBefore - polls - 1;
const statsAfter = await commandStats();
const executed = new Map([...statsAfter].map(([name, n]) => [name, n - (statsBefore.get(name) ?? 0)]));
// Minus our own polling (an HGET a second) and the INFO calls that measure.
executed.set('hget', (executed.get('hget') ?? 0) - polls);
executed.set('info', Math.max(0, (executed.get('info') ?? 0) - 2));
const executedTotal = [...executed.values()].reduce((a, b) => a + b, 0);
if (process.env.BENCH_DEBUG) {
  for (const [k, v] of sent) if (v - (sentByName.get(k) ?? 0)) console.log(k, v - (sentByName.get(k) ?? 0));
  const chunkJobs = (await queues.chunks.getJobs(['completed'])).filter((j) => j.data.setId === id);
  const first = Math.min(...chunkJobs.map((j) => j.processedOn!));
  const last = Math.max(...chunkJobs.map((j) => j.finishedOn!));
  const setJob = (await queues.sets.getJob(id))!;
  console.log(`enqueue->first chunk ${(first - t0Epoch) / 1000}s, chunk span ${(last - first) / 1000}s, last chunk->set finished ${(setJob.finishedOn! - last) / 1000}s`);
}
const puts = s3.puts() - putsBefore;
const view = (await client.view(id))!;
const fill = (await worker.pool.stats()).fill;

await worker.close();
await queues.close();
const keys = await redis.keys(`${prefix.replace(/[{}]/g, '\\$&')}:*`);
if (keys.length) await redis.unlink(...keys);
redis.disconnect();
store.destroy();
await s3.stop();

const workerRate = N / seconds;
console.log(`detq bench:queue — ${N} images (coco128 cycled) on a local S3 server, ${threads} threads, batch ${batch}, 1 worker, chunks of ${spec.chunkSize}`);
console.log(`job ${view.status}: ${view.counts.done}/${view.counts.total} in ${seconds.toFixed(1)} s (enqueue to finalised), batch fill ${fill.toFixed(2)}`);
const top = [...executed].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([name, n]) => `${name} ${n}`).join(', ');
const rows: [string, string, string][] = [
  ['Redis commands per image', (executedTotal / N).toFixed(4), `${executedTotal} executed by Redis (INFO commandstats, scripts' inner commands included): ${top}`],
  ['  sent by the clients', (sentByJob / N).toFixed(4), `${sentByJob} commands sent by API client + worker (a script counts once); target <= 0.05`],
  ['  total_commands_processed', (redisCommands / N).toFixed(4), `${redisCommands}`],
  ['S3 PUTs per image', (puts / N).toFixed(4), `${puts} PUTs (chunks, jsonl, coco, manifest, summary); target <= 0.01`],
  ['detq label img/s', local.timing.imagesPerSecond.toFixed(1), 'runLocal on the same prefix'],
  ['worker img/s', workerRate.toFixed(1), 'enqueue to finalised'],
  ['worker / detq label', (workerRate / local.timing.imagesPerSecond).toFixed(3), 'target >= 0.9'],
];
for (const [name, value, note] of rows) console.log(`${name.padEnd(28)} ${value.padStart(9)}   ${note}`);
