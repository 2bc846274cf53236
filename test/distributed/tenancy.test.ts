import type { Redis } from 'ioredis';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetricsServer, createServer, createToken, loadTokens, revokeToken, TokenStore, type AuditEntry } from '@detq/api';
import { jobSpecSchema } from '@detq/core';
import { JobClient, type DetqQueues } from '@detq/queue';
import { dropPrefix, producerQueues, testQueueConfig } from './helpers';
import { openApiChecker } from './openapi-check';

/** The API against real Redis, as two tenants and an admin would use it; every answer checked against /openapi.json. */
describe('API as a multi-tenant service', () => {
  const config = testQueueConfig();
  const alice = createToken('alice', ['s3://in/*', 's3://out/alice/*', 's3://models/alice/*']);
  const bob = createToken('bob', ['s3://in/*', 's3://out/bob/*']);
  const admin = createToken('root', ['s3://none/*'], ['admin']);
  const ops = createToken('ops', ['s3://none/*'], ['metrics']);
  const dir = mkdtempSync(join(tmpdir(), 'detq-tokens-'));
  const tokensFile = join(dir, 'tokens.json');
  const audit: AuditEntry[] = [];
  let queues: DetqQueues;
  let app: ReturnType<typeof createServer>;
  let api: Awaited<ReturnType<typeof openApiChecker>>;
  const tokens = new TokenStore([]);
  const spec = (out = 's3://out/alice/r/') => ({ input: { uri: 's3://in/set/' }, output: { uri: out } });
  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, token: string, payload?: object) =>
    api.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload && { payload }) });
  const fields = (res: { json: () => { fields?: { field: string }[] } }) => res.json().fields?.map((f) => f.field);

  beforeAll(async () => {
    queues = await producerQueues(config);
    writeFileSync(tokensFile, JSON.stringify([alice.entry, bob.entry, admin.entry, ops.entry]));
    await loadTokens(tokensFile, tokens, queues, { maxImgsz: 1280, maxImages: 1000, maxObjectBytes: 1 << 20 }, () => {});
    app = createServer({
      queues,
      tokens,
      s3Ready: async () => {},
      webhooks: { hosts: ['localhost', '169.254.169.254', 'hooks.example.com'], allowPrivate: false },
      quotas: { ratePerSecond: 1000, maxActiveJobs: 4, maxQueuedImages: 50 },
      caps: { maxImgsz: 1280 },
      audit: (e) => audit.push(e),
    });
    api = await openApiChecker(app);
  });

  afterAll(async () => {
    await app.close();
    await queues.close();
    await dropPrefix(config.prefix);
  });

  it('another tenant gets 404 for a job on GET, events and cancel; lists hold only your own jobs; an admin sees all', async () => {
    const a = (await call('POST', '/v1/jobs', alice.token, spec())).json().id as string;
    const b = (await call('POST', '/v1/jobs', bob.token, spec('s3://out/bob/r/'))).json().id as string;
    expect((await call('GET', `/v1/jobs/${a}`, bob.token)).statusCode).toBe(404);
    expect((await call('GET', `/v1/jobs/${a}/events`, bob.token)).statusCode).toBe(404);
    expect((await call('POST', `/v1/jobs/${a}/cancel`, bob.token)).statusCode).toBe(404);
    // The same answer as for an id that never existed.
    expect((await call('GET', `/v1/jobs/${a}`, bob.token)).json()).toEqual((await call('GET', '/v1/jobs/nope', bob.token)).json());
    expect((await call('GET', `/v1/jobs/${a}`, alice.token)).json()).toMatchObject({ id: a, status: 'queued', owner: 'alice' });
    expect((await call('GET', '/v1/jobs', alice.token)).json().jobs.map((j: { id: string }) => j.id)).toEqual([a]);
    expect((await call('GET', '/v1/jobs', bob.token)).json().jobs.map((j: { id: string }) => j.id)).toEqual([b]);
    expect((await call('GET', '/v1/jobs', admin.token)).json().jobs.map((j: { id: string }) => j.id).sort()).toEqual([a, b].sort());
    expect((await call('GET', `/v1/jobs/${b}`, admin.token)).statusCode).toBe(200);
    expect((await call('POST', `/v1/jobs/${b}/cancel`, admin.token)).statusCode).toBe(200);
    expect((await call('POST', `/v1/jobs/${a}/cancel`, alice.token)).statusCode).toBe(200);
  });

  it('schedule ids are per tenant: B cannot delete or replace A\'s schedule; an admin lists both', async () => {
    const nightly = { id: 'nightly', cron: '0 2 * * *' };
    expect((await call('POST', '/v1/schedules', alice.token, { ...nightly, spec: spec() })).statusCode).toBe(201);
    expect((await call('DELETE', '/v1/schedules/nightly', bob.token)).statusCode).toBe(404);
    // B's own 'nightly' is another schedule.
    expect((await call('POST', '/v1/schedules', bob.token, { ...nightly, spec: spec('s3://out/bob/n/') })).statusCode).toBe(201);
    expect((await call('GET', '/v1/schedules', alice.token)).json().schedules).toEqual([expect.objectContaining({ id: 'nightly', owner: 'alice' })]);
    const all = (await call('GET', '/v1/schedules', admin.token)).json().schedules.map((s: { owner: string }) => s.owner).sort();
    expect(all).toEqual(['alice', 'bob']);
    expect((await call('DELETE', '/v1/schedules/nightly', alice.token)).statusCode).toBe(204);
    expect((await call('GET', '/v1/schedules', bob.token)).json().schedules).toHaveLength(1);
    expect((await call('DELETE', '/v1/schedules/nightly', bob.token)).statusCode).toBe(204);
  });

  it('refuses `..`, `%2e%2e`, empty segments and control characters in input, output and model URIs, naming the field', async () => {
    const attacks: [object, string][] = [
      [{ ...spec(), input: { uri: 's3://in/../private/set/' } }, 'input.uri'],
      [{ ...spec(), input: { uri: 's3://in/%2e%2e/private/' } }, 'input.uri'],
      [{ ...spec(), input: { images: ['s3://in/a.jpg', 's3://in/x/%2E%2E/%2e%2e/b.jpg'] } }, 'input.images.1'],
      [spec('s3://out/alice/../bob/'), 'output.uri'],
      [spec('s3://out/alice/%2e%2e/bob/'), 'output.uri'],
      [spec('s3://out/alice//x/'), 'output.uri'],
      [{ ...spec(), model: { uri: 's3://models/alice/../bob/private.onnx' } }, 'model.uri'],
      [{ ...spec(), model: { uri: 's3://models/alice/%2e%2e/bob/m.onnx' } }, 'model.uri'],
      [{ ...spec(), input: { uri: 's3://in/set\u001b[2J/' } }, 'input.uri'],
      [{ ...spec(), input: { manifest: 's3://in/list\r\n.jsonl' } }, 'input.manifest'],
    ];
    for (const [body, field] of attacks) {
      const res = await call('POST', '/v1/jobs', alice.token, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(fields(res), JSON.stringify(body)).toEqual([field]);
    }
    // Scopes match whole segments: s3://out/alice/* does not cover s3://out/alice2/.
    const sibling = await call('POST', '/v1/jobs', alice.token, spec('s3://out/alice2/x/'));
    expect(sibling.statusCode).toBe(403);
    expect(fields(sibling)).toEqual(['output.uri']);
    const model = await call('POST', '/v1/jobs', alice.token, { ...spec(), model: { uri: 's3://models/bob/m.onnx' } });
    expect([model.statusCode, fields(model)]).toEqual([403, ['model.uri']]);
  });

  it('caps: imgsz over the token cap, a one-second cron, an extglob; a pathological glob is accepted (linear-time matcher)', async () => {
    const big = await call('POST', '/v1/jobs', alice.token, { ...spec(), params: { imgsz: 1920 } });
    expect([big.statusCode, fields(big)]).toEqual([400, ['params.imgsz']]);
    const everySecond = await call('POST', '/v1/schedules', alice.token, { id: 'fast', cron: '* * * * * *', spec: spec() });
    expect([everySecond.statusCode, fields(everySecond)]).toEqual([400, ['cron']]);
    expect(everySecond.json().fields[0].message).toMatch(/every 1 s.*60 s/);
    const extglob = await call('POST', '/v1/jobs', alice.token, { ...spec(), input: { uri: 's3://in/set/', include: ['+(a|b)*.jpg'] } });
    expect([extglob.statusCode, fields(extglob)]).toEqual([400, ['input.include.0']]);
    const glob = await call('POST', '/v1/jobs', alice.token, { ...spec(), input: { uri: 's3://in/set/', include: [`${'*a'.repeat(15)}*b`] } });
    expect(glob.statusCode).toBe(202);
    await call('POST', `/v1/jobs/${glob.json().id}/cancel`, alice.token);
  });

  it('a webhook URL resolving to 127.0.0.1 or 169.254.169.254 is refused unless private addresses are allowed', async () => {
    for (const url of ['http://localhost:9/hook', 'http://169.254.169.254/latest/meta-data/']) {
      const res = await call('POST', '/v1/jobs', alice.token, { ...spec(), webhook: { url } });
      expect([res.statusCode, fields(res)], url).toEqual([400, ['webhook.url']]);
      expect(res.json().fields[0].message).toMatch(/private or link-local/);
    }
    const allowing = createServer({ queues, tokens, s3Ready: async () => {}, webhooks: { hosts: ['localhost'], allowPrivate: true } });
    const res = await allowing.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${alice.token}` }, payload: { ...spec(), webhook: { url: 'http://localhost:9/hook' } } });
    expect(res.statusCode).toBe(202);
    await allowing.inject({ method: 'POST', url: `/v1/jobs/${res.json().id}/cancel`, headers: { authorization: `Bearer ${alice.token}` } });
    await allowing.close();
  });

  it('429 naming the limit at the concurrent-jobs and queued-images quotas, and at the request rate, with Retry-After', async () => {
    const ids: string[] = [];
    // Each job its own output: one live job per output prefix (409) is another rule.
    for (let i = 0; i < 4; i++) ids.push((await call('POST', '/v1/jobs', bob.token, spec(`s3://out/bob/q${i}/`))).json().id);
    const over = await call('POST', '/v1/jobs', bob.token, spec('s3://out/bob/q4/'));
    expect(over.statusCode).toBe(429);
    expect(over.json().error).toMatch(/DETQ_MAX_ACTIVE_JOBS/);
    expect(over.headers['retry-after']).toBeDefined();
    for (const id of ids) await call('POST', `/v1/jobs/${id}/cancel`, bob.token);
    const images = Array.from({ length: 51 }, (_, i) => `s3://in/${i}.jpg`);
    const tooMany = await call('POST', '/v1/jobs', bob.token, { ...spec('s3://out/bob/q/'), input: { images } });
    expect(tooMany.statusCode).toBe(429);
    expect(tooMany.json().error).toMatch(/DETQ_MAX_QUEUED_IMAGES/);

    const slow = createServer({ queues, tokens, s3Ready: async () => {}, quotas: { ratePerSecond: 3 } });
    const codes: number[] = [];
    let retryAfter: unknown;
    for (let i = 0; i < 5; i++) {
      const r = await slow.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: `Bearer ${alice.token}` } });
      codes.push(r.statusCode);
      if (r.statusCode === 429) retryAfter ??= r.headers['retry-after'];
    }
    // Another token has its own budget.
    const other = await slow.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: `Bearer ${bob.token}` } });
    await slow.close();
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(other.statusCode).toBe(200);
  });

  it('an audit line per mutating request: principal, route, job id, result', () => {
    const cancels = audit.filter((e) => e.route === '/v1/jobs/:id/cancel');
    expect(cancels.some((e) => e.principal === 'bob' && e.status === 404 && e.jobId)).toBe(true);
    const posts = audit.filter((e) => e.route === '/v1/jobs' && e.status === 202);
    expect(posts.every((e) => e.jobId && e.principal)).toBe(true);
    expect(audit.some((e) => e.method === 'DELETE' && e.principal === 'alice' && e.status === 204)).toBe(true);
    expect(audit.some((e) => e.status === 429 && e.principal === 'bob')).toBe(true);
    // Reads are not audited.
    expect(audit.every((e) => e.method !== 'GET')).toBe(true);
  });

  it('a revoked token (detq token revoke, then a reload) gets 401 and disappears from what workers see', async () => {
    expect((await call('GET', '/v1/jobs', bob.token)).statusCode).toBe(200);
    expect(revokeToken(tokensFile, 'bob')).toBe(true);
    await loadTokens(tokensFile, tokens, queues, { maxImgsz: 1280, maxImages: 1000, maxObjectBytes: 1 << 20 }, () => {});
    expect((await call('GET', '/v1/jobs', bob.token)).statusCode).toBe(401);
    expect(await queues.principals.get('bob')).toBeUndefined();
    expect(await queues.principals.get('alice')).toMatchObject({ scopes: alice.entry.scopes });
  });

  it('the generated OpenAPI 3.1 document validates and documents every route with its schemas', () => {
    const doc = api.doc as unknown as { openapi: string; paths: Record<string, object>; components: { schemas: Record<string, object> } };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/healthz',
        '/metrics',
        '/readyz',
        '/v1/jobs',
        '/v1/jobs/{id}',
        '/v1/jobs/{id}/cancel',
        '/v1/jobs/{id}/events',
        '/v1/schedules',
        '/v1/schedules/{id}',
        // The dashboard's routes (apps/api/src/dashboard-routes.ts).
        '/v1/cron/next',
        '/v1/jobs/{id}/detail',
        '/v1/jobs/{id}/file',
        '/v1/jobs/{id}/image',
        '/v1/jobs/{id}/records',
        '/v1/jobs/{id}/throughput',
        '/v1/workers',
      ].sort(),
    );
    expect(JSON.stringify(doc.paths['/v1/jobs/{id}'])).toContain('#/components/schemas/JobView');
    const view = JSON.stringify(doc.components.schemas.JobView);
    for (const field of ['createdAt', 'startedAt', 'finishedAt', 'error', 'scheduleId', 'metadata']) expect(view).toContain(field);
    expect(api.checked()).toBeGreaterThan(40);
  });

  it('metrics: a metrics-role token or the separate port; the same Redis commands per scrape whatever the number of jobs', async () => {
    expect((await call('GET', '/metrics', alice.token)).statusCode).toBe(403);
    // Every command the scrape sends, counted on the connection (BullMQ's queue counts included).
    let commands = 0;
    const redis = queues.redis as Redis;
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = ((...args: Parameters<typeof send>) => (commands++, send(...args))) as typeof send;
    const scrape = async () => {
      commands = 0;
      const res = await call('GET', '/metrics', ops.token);
      expect(res.statusCode).toBe(200);
      return { commands, queued: Number(/^detq_jobs\{status="queued"\} (\d+)$/m.exec(res.body)?.[1]) };
    };
    const before = await scrape();
    const client = new JobClient(queues);
    for (let i = 0; i < 30; i++) await client.enqueue(jobSpecSchema.parse(spec(`s3://out/alice/m${i}/`)), { principal: 'alice' });
    const after = await scrape();
    queues.redis.sendCommand = send;
    expect(after.queued - before.queued).toBe(30);
    expect(before.commands).toBeGreaterThan(0);
    expect(after.commands).toBe(before.commands);
    const separate = createMetricsServer(queues);
    const res = await separate.inject('/metrics');
    await separate.close();
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^# TYPE detq_images_total counter$/m);
  });

  it('serves the API reference at /docs', async () => {
    const res = await app.inject('/docs/');
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/swagger/i);
  });
});
