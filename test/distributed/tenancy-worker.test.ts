import type { Readable } from 'node:stream';
import { createHmac } from 'node:crypto';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobSpecSchema, type JobSpecInput } from '@detq/core';
import { createServer, createToken, smallObjectReader, TokenStore } from '@detq/api';
import { DetqQueues, JobClient, ScheduleClient, type PrincipalRecord } from '@detq/queue';
import { RoutingStore, S3Store, s3ConfigFromEnv, type ObjectStore } from '@detq/storage';
import { createWorker, workerSettingsFromEnv, type DetqWorker } from '@detq/worker';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';
import { COCO_IMAGES, cocoImageNames } from '../helpers/fixtures';
import { dropPrefix, testQueueConfig, uploadSet, waitFor, waitForEnd, type Manifest } from './helpers';

/**
 * The store the worker reads through, counting reads per URI (to prove what was never downloaded) and
 * making reads under `/absent` slow (300 ms, then a 404), so the ordering tests measure chunk order
 * rather than how fast this loaded machine answers.
 */
class CountingStore implements ObjectStore {
  readonly reads = new Map<string, number>();
  constructor(private readonly inner: RoutingStore) {}
  async get(uri: string) {
    this.reads.set(uri, (this.reads.get(uri) ?? 0) + 1);
    if (uri.includes('/absent')) await new Promise((r) => setTimeout(r, 300));
    return this.inner.get(uri);
  }
  put(uri: string, body: Buffer | string, contentType?: string) {
    return this.inner.put(uri, body, contentType);
  }
  upload(uri: string, open: () => Readable, contentType?: string) {
    return this.inner.upload(uri, open, contentType);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  exists(uri: string) {
    return this.inner.exists(uri);
  }
}

const caps = { maxImgsz: 1280, maxImages: 10_000, maxObjectBytes: 64 << 20 };
const SECRET = 'whsec_test_0123456789abcdef';
const principal = (scopes: string[], extra: Partial<PrincipalRecord> = {}): PrincipalRecord => ({ scopes, roles: [], caps, webhookSecret: SECRET, ...extra });

describe('worker (in process): tenancy on real workers', () => {
  let s3: TestS3Server;
  let store: S3Store;
  let reads: CountingStore;
  let worker: DetqWorker;
  let queues: DetqQueues;
  let client: JobClient;
  let receiver: Server;
  const deliveries: { headers: IncomingHttpHeaders; body: string }[] = [];
  let hookUrl: string;
  const config = testQueueConfig();
  const tenants = new Map<string, PrincipalRecord>();
  const publish = () => queues.principals.replaceAll(tenants);
  const enqueue = (spec: JobSpecInput, name: string) => client.enqueue(jobSpecSchema.parse(spec), { principal: name });

  beforeAll(async () => {
    s3 = await startS3Server();
    Object.assign(process.env, s3.env);
    store = new S3Store(s3ConfigFromEnv(s3.env));
    receiver = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        deliveries.push({ headers: req.headers, body });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
    reads = new CountingStore(new RoutingStore());
    worker = await createWorker(
      { ...workerSettingsFromEnv({ DETQ_ALLOW_VOLATILE_REDIS: '1' }), queue: config, threads: 2, progressIntervalMs: 100, webhooks: { hosts: ['127.0.0.1'], allowPrivate: true, backoffMs: 50 } },
      { log: () => {}, store: reads },
    );
    queues = new DetqQueues(config);
    client = new JobClient(queues);
    tenants.set('alice', principal(['s3://in/alice/*', 's3://in/shared/*', 's3://out/alice/*']));
    tenants.set('bob', principal(['s3://in/bob/*', 's3://in/shared/*', 's3://out/bob/*']));
    await publish();
  }, 60_000);

  afterAll(async () => {
    await worker?.close();
    await queues?.close();
    await dropPrefix(config.prefix);
    receiver?.close();
    store?.destroy();
    await s3?.stop();
  });

  it('a manifest line outside the token scopes becomes that image\'s FORBIDDEN record; nothing of B is read', async () => {
    const [a1, a2] = cocoImageNames(2);
    await uploadSet(store, 's3://in/alice/m/', [a1!, a2!]);
    await uploadSet(store, 's3://in/bob/private/', [a1!]);
    const lines = [`s3://in/alice/m/${a1}`, `s3://in/bob/private/${a1}`, `{"uri":"s3://in/alice/m/${a2}"}`];
    await store.put('s3://in/alice/list.jsonl', lines.map((l) => (l.startsWith('{') ? l : JSON.stringify(l))).join('\n'));
    const { id } = await enqueue({ input: { manifest: 's3://in/alice/list.jsonl' }, output: { uri: 's3://out/alice/m/' } }, 'alice');
    const view = await waitForEnd(client, id);
    expect(view.counts).toEqual({ total: 3, done: 3, failed: 1 });
    const manifest = JSON.parse((await store.get('s3://out/alice/m/manifest.json')).toString()) as Manifest;
    const bobs = manifest.images.find((i) => i.key === `s3://in/bob/private/${a1}`);
    expect(bobs?.error?.code).toBe('FORBIDDEN');
    expect(reads.reads.get(`s3://in/bob/private/${a1}`)).toBeUndefined();
  });

  it('a small manifest with a line outside the scopes is refused at enqueue, naming the field and line; a big one is left to planning', async () => {
    const token = createToken('alice', ['s3://in/alice/*', 's3://in/shared/*', 's3://out/alice/*']);
    await store.put('s3://in/alice/small.jsonl', ['s3://in/alice/m/a.jpg', 's3://in/bob/private/b.jpg'].map((l) => JSON.stringify(l)).join('\n'));
    const post = async (maxBytes: number) => {
      const app = createServer({ queues, tokens: new TokenStore([token.entry]), s3Ready: async () => {}, readManifest: smallObjectReader(store.client, maxBytes) });
      const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${token.token}` }, payload: { input: { manifest: 's3://in/alice/small.jsonl' }, output: { uri: 's3://out/alice/small/' } } });
      await app.close();
      return res;
    };
    const refused = await post(1 << 20);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().fields).toEqual([{ field: 'input.manifest', message: 'line 2: s3://in/bob/private/b.jpg is not in scope' }]);
    const big = await post(10);
    expect(big.statusCode).toBe(202);
    await client.cancel(big.json().id);
    // The servers published their one token; the test's tenants again.
    await publish();
  });

  it('an object above the token\'s byte cap is FILE_TOO_LARGE from its listed size, never downloaded', async () => {
    tenants.set('small', principal(['s3://in/small/*', 's3://out/small/*'], { caps: { ...caps, maxObjectBytes: 20_000 } }));
    await publish();
    const big = cocoImageNames(8).find((n) => readFileSync(join(COCO_IMAGES, n)).length > 20_000)!;
    await uploadSet(store, 's3://in/small/', [big]);
    const { id } = await enqueue({ input: { uri: 's3://in/small/' }, output: { uri: 's3://out/small/o/' } }, 'small');
    expect((await waitForEnd(client, id)).counts).toEqual({ total: 1, done: 1, failed: 1 });
    const manifest = JSON.parse((await store.get('s3://out/small/o/manifest.json')).toString()) as Manifest;
    expect(manifest.images[0]?.error).toMatchObject({ code: 'FILE_TOO_LARGE', message: expect.stringMatching(/not downloaded/) });
    expect(reads.reads.get(`s3://in/small/${big}`)).toBeUndefined();
  });

  it('a pathological include glob is matched in linear time: the worker keeps serving another tenant meanwhile', async () => {
    const [img] = cocoImageNames(1);
    const bytes = readFileSync(join(COCO_IMAGES, img!));
    // Near misses for `*a*a…*b`: a backtracking matcher takes exponential time on each of them.
    for (let i = 0; i < 4; i++) await store.put(`s3://in/alice/glob/${'a'.repeat(60 + i)}.jpg`, bytes);
    await store.put(`s3://in/alice/glob/${'a'.repeat(40)}b.jpg`, bytes);
    await uploadSet(store, 's3://in/bob/other/', cocoImageNames(6));
    const glob = await enqueue({ input: { uri: 's3://in/alice/glob/', include: [`${'*a'.repeat(15)}*b*`] }, output: { uri: 's3://out/alice/glob/' } }, 'alice');
    const other = await enqueue({ input: { uri: 's3://in/bob/other/' }, output: { uri: 's3://out/bob/other/' }, chunkSize: 2 }, 'bob');
    const [g, o] = await Promise.all([waitForEnd(client, glob.id, 60_000), waitForEnd(client, other.id, 60_000)]);
    expect([g.status, g.counts.total]).toEqual(['completed', 1]);
    expect([o.status, o.counts.total]).toEqual(['completed', 6]);
  });

  it('webhook: signed with the token secret, verified by a loopback receiver, delivered once even when the finaliser re-runs', async () => {
    await uploadSet(store, 's3://in/alice/hook/', cocoImageNames(2));
    const { id } = await enqueue({ input: { uri: 's3://in/alice/hook/' }, output: { uri: 's3://out/alice/hook/' }, webhook: { url: hookUrl } }, 'alice');
    await waitForEnd(client, id);
    await waitFor('the webhook', async () => (deliveries.length ? true : undefined), 30_000);
    const [d] = deliveries;
    const timestamp = d!.headers['detq-timestamp'] as string;
    const expected = `v1=${createHmac('sha256', SECRET).update(`${timestamp}.${d!.body}`).digest('hex')}`;
    expect(d!.headers['detq-signature']).toBe(expected);
    expect(Math.abs(Date.now() / 1000 - Number(timestamp))).toBeLessThan(300);
    expect(d!.headers['idempotency-key']).toBe(`${id}:completed`);
    expect(JSON.parse(d!.body)).toMatchObject({ id, status: 'completed' });

    // Run the finalise step of the finished job again.
    const job = (await Job.fromId(queues.sets, id))!;
    const before = job.finishedOn!;
    await job.retry('completed');
    await waitFor('the finaliser re-run', async () => {
      const again = await Job.fromId(queues.sets, id);
      return again?.finishedOn && again.finishedOn > before && (await again.getState()) === 'completed' ? true : undefined;
    }, 60_000);
    expect(deliveries).toHaveLength(1);
  });

  it('a schedule whose token lost a scope fails its next run with the reason recorded', async () => {
    tenants.set('carol', principal(['s3://in/shared/*', 's3://out/carol/*']));
    await publish();
    const schedules = new ScheduleClient(queues);
    const spec = jobSpecSchema.parse({ input: { uri: 's3://in/shared/none/' }, output: { uri: 's3://out/carol/nightly/' } });
    await schedules.add({ id: 'nightly', cron: '0 3 * * *', spec }, { principal: 'carol' });
    tenants.set('carol', principal(['s3://in/shared/*', 's3://out/carol/other/*']));
    await publish();
    // Fire the next run now instead of waiting for 03:00.
    const [next] = await queues.sets.getDelayed();
    await next!.promote();
    const run = await waitFor('the scheduled run to end', async () => {
      const { jobs } = await client.list({ limit: 10 }, { principal: 'carol', admin: false });
      return jobs.find((j) => j.scheduleId === 'nightly' && j.status === 'failed');
    }, 60_000);
    expect(run.error).toMatch(/refused for token carol: output\.uri: .* is not in scope/);
    await schedules.remove('nightly', { principal: 'carol', admin: false });
  });

  it('fair across tenants: a 100-image job behind another tenant\'s 5,000-image job ends before the big one is 20 % done', async () => {
    const images = (tenant: string, n: number) => Array.from({ length: n }, (_, i) => `s3://in/${tenant}/absent/${i}.jpg`);
    // Absent objects: each image is a READ_FAILED record after a slow read; the order of chunks is what is measured.
    const big = await enqueue({ input: { images: images('alice', 5000) }, output: { uri: 's3://out/alice/big/' }, chunkSize: 50 }, 'alice');
    await waitFor('the big job to be planned', async () => ((await client.view(big.id))?.status === 'running' ? true : undefined));
    const small = await enqueue({ input: { images: images('bob', 100) }, output: { uri: 's3://out/bob/small/' }, chunkSize: 50 }, 'bob');
    const bigAtEnd = await waitFor('the small job to end', async () => {
      const [b, s] = await Promise.all([client.view(big.id), client.view(small.id)]);
      return s && ['completed', 'completed_with_errors'].includes(s.status) ? b : undefined;
    }, 120_000);
    expect(bigAtEnd!.counts.done).toBeLessThan(1000);
    await client.cancel(big.id);
    await waitForEnd(client, big.id);
  }, 180_000);

  it('priority 1 overtakes a job without a priority', async () => {
    const images = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `s3://in/alice/absent-${tag}/${i}.jpg`);
    const plain = await enqueue({ input: { images: images(3000, 'p') }, output: { uri: 's3://out/alice/plain/' }, chunkSize: 50 }, 'alice');
    await waitFor('the default job to be planned', async () => ((await client.view(plain.id))?.status === 'running' ? true : undefined));
    const urgent = await enqueue({ input: { images: images(100, 'u') }, output: { uri: 's3://out/alice/urgent/' }, chunkSize: 50, priority: 1 }, 'alice');
    const plainAtEnd = await waitFor('the urgent job to end', async () => {
      const [p, u] = await Promise.all([client.view(plain.id), client.view(urgent.id)]);
      return u && ['completed', 'completed_with_errors'].includes(u.status) ? p : undefined;
    }, 120_000);
    expect(plainAtEnd!.counts.done).toBeLessThan(1500);
    await client.cancel(plain.id);
    await waitForEnd(client, plain.id);
  }, 180_000);
});
