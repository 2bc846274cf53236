import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, createToken, TokenStore } from '@detq/api';
import type { DetqQueues } from '@detq/queue';
import { dropPrefix, producerQueues, testQueueConfig } from './helpers';

describe('enqueue API: validation and auth', () => {
  const config = testQueueConfig();
  const alice = createToken('alice', ['s3://in/*', 's3://out/alice/*']);
  const bob = createToken('bob', ['s3://in/*', 's3://out/bob/*']);
  const ops = createToken('ops', ['s3://none/*'], ['metrics']);
  let queues: DetqQueues;
  let app: ReturnType<typeof createServer>;
  const spec = { input: { uri: 's3://in/set/' }, output: { uri: 's3://out/alice/run1/', formats: ['jsonl', 'coco'] } };
  const post = (body: unknown, token: string = alice.token) =>
    app.inject({ method: 'POST', url: '/v1/jobs', payload: body as object, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const get = (url: string, token = alice.token) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    queues = await producerQueues(config);
    app = createServer({ queues, tokens: new TokenStore([alice.entry, bob.entry, ops.entry]), s3Ready: async () => {}, webhooks: { hosts: ['hooks.example.com'], allowPrivate: false }, quotas: { ratePerSecond: 1000 } });
  });

  afterAll(async () => {
    await app.close();
    await queues.close();
    await dropPrefix(config.prefix);
  });

  it('401 without a token or with a wrong one', async () => {
    expect((await post(spec, '')).statusCode).toBe(401);
    expect((await post(spec, 'detq_wrong')).statusCode).toBe(401);
    expect((await get('/v1/jobs', 'nope')).statusCode).toBe(401);
  });

  it('400 naming every invalid field, without a stack trace', async () => {
    const res = await post({ input: { uri: 's3://in/set/' }, params: { conf: 2 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields.map((f: { field: string }) => f.field).sort()).toEqual(['output', 'params.conf']);
    const bad = await post({ ...spec, output: { uri: 's3://out/alice/x/', formats: ['coco', 'xml'] }, colour: 'red' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().fields.map((f: { field: string }) => f.field).sort()).toEqual(['colour', 'output.formats.1']);
    expect(bad.body).not.toMatch(/at .*\.ts:\d+/);
    const notJson = await app.inject({ method: 'POST', url: '/v1/jobs', payload: '{"input":', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' } });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).not.toHaveProperty('stack');
  });

  it('rejects http(s) inputs: only s3:// is fetched', async () => {
    const res = await post({ ...spec, input: { uri: 'http://169.254.169.254/latest/' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields[0].field).toBe('input.uri');
    const listed = await post({ ...spec, input: { images: ['s3://in/a.jpg', 'https://example.com/b.jpg'] } });
    expect(listed.json().fields[0].field).toBe('input.images.1');
  });

  it('403 when input or output lies outside the token scopes', async () => {
    const out = await post({ ...spec, output: { uri: 's3://out/bob/run/' } });
    expect(out.statusCode).toBe(403);
    expect(out.json().fields.map((f: { field: string }) => f.field)).toEqual(['output.uri']);
    const inp = await post({ ...spec, input: { uri: 's3://private/set/' } });
    expect(inp.statusCode).toBe(403);
    expect(inp.json().fields[0].field).toBe('input.uri');
  });

  it('400 for a webhook host off the allowlist', async () => {
    const res = await post({ ...spec, webhook: { url: 'https://evil.example.org/x' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields[0].field).toBe('webhook.url');
  });

  it('413 above the body limit', async () => {
    const res = await post({ ...spec, metadata: { big: 'x'.repeat(10 * 1024 * 1024) } });
    expect(res.statusCode).toBe(413);
  });

  it('202 with links; the same idempotency key returns the same job; status, list and cancel', async () => {
    const first = await post({ ...spec, idempotencyKey: 'nightly-1' });
    expect(first.statusCode).toBe(202);
    const { id, status, links } = first.json();
    expect(status).toBe('queued');
    expect(links.self).toBe(`/v1/jobs/${id}`);
    const again = await post({ ...spec, idempotencyKey: 'nightly-1' });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(id);
    // Keys are per token: bob's 'nightly-1' is another job.
    const bobs = await post({ ...spec, output: { uri: 's3://out/bob/r/' }, idempotencyKey: 'nightly-1' }, bob.token);
    expect(bobs.json().id).not.toBe(id);

    const view = (await get(`/v1/jobs/${id}`)).json();
    expect(view).toMatchObject({ id, status: 'queued', counts: { total: 0, done: 0, failed: 0 }, progress: null, output: 's3://out/alice/run1/' });
    expect((await get('/v1/jobs/nope')).statusCode).toBe(404);

    const queued = (await get('/v1/jobs?status=queued&limit=1')).json();
    expect(queued.jobs).toHaveLength(1);
    const rest = (await get(`/v1/jobs?status=queued&limit=10&cursor=${queued.next}`)).json();
    // A tenant's list holds only its own jobs.
    expect([...queued.jobs, ...rest.jobs].map((j: { id: string }) => j.id)).toEqual([id]);
    expect((await get('/v1/jobs?status=done&limit=0')).json().fields.map((f: { field: string }) => f.field)).toEqual(['status', 'limit']);

    const cancel = () => app.inject({ method: 'POST', url: `/v1/jobs/${id}/cancel`, headers: { authorization: `Bearer ${alice.token}` } });
    expect((await cancel()).statusCode).toBe(200);
    expect((await get(`/v1/jobs/${id}`)).json().status).toBe('cancelled');
    expect((await cancel()).statusCode).toBe(409);
  });

  it('schedules: 400 for a bad cron or spec, 201 then listed, 204 on delete', async () => {
    const sched = (body: unknown) => app.inject({ method: 'POST', url: '/v1/schedules', payload: body as object, headers: { authorization: `Bearer ${alice.token}` } });
    const badCron = await sched({ id: 'nightly', cron: 'every night!', spec });
    expect(badCron.statusCode).toBe(400);
    expect(badCron.json().fields[0].field).toBe('cron');
    const badSpec = await sched({ id: 'nightly', cron: '0 2 * * *', spec: { ...spec, params: { iou: -1 } } });
    expect(badSpec.json().fields.map((f: { field: string }) => f.field)).toEqual(['spec.params.iou']);
    expect((await sched({ id: 'nightly', cron: '0 2 * * *', spec: { ...spec, output: { uri: 's3://out/bob/' } } })).statusCode).toBe(403);
    const ok = await sched({ id: 'nightly', cron: '0 2 * * *', spec: { ...spec, incremental: true } });
    expect(ok.statusCode).toBe(201);
    expect(ok.json()).toMatchObject({ id: 'nightly', cron: '0 2 * * *' });
    expect((await get('/v1/schedules')).json().schedules.map((s: { id: string }) => s.id)).toEqual(['nightly']);
    const del = () => app.inject({ method: 'DELETE', url: '/v1/schedules/nightly', headers: { authorization: `Bearer ${alice.token}` } });
    expect((await del()).statusCode).toBe(204);
    expect((await del()).statusCode).toBe(404);
  });

  it('health, readiness, metrics and the OpenAPI document', async () => {
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    const ready = await app.inject('/readyz');
    expect(ready.json()).toEqual({ redis: 'ok', s3: 'ok' });
    expect((await get('/metrics')).statusCode).toBe(403);
    const metrics = (await get('/metrics', ops.token)).body;
    expect(metrics).toMatch(/^detq_jobs\{status="cancelled"\} 1$/m);
    expect(metrics).toMatch(/^detq_queue_depth\{queue="chunks",state="waiting"\} 0$/m);
    const doc = (await app.inject('/openapi.json')).json();
    expect(doc.paths['/v1/jobs'].post.requestBody.content['application/json'].schema.properties.params.properties.conf.maximum).toBe(1);
    expect(Object.keys(doc.paths)).toContain('/v1/jobs/{id}/events');
  });
});
