import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { describeIssues, DetqError, jobSpecSchema, jobStatusSchema, scheduleSpecSchema, TERMINAL_STATUSES, type JobSpec } from '@detq/core';
import { CHUNK_QUEUE, isWebhookAllowed, JobClient, OutputBusyError, ScheduleClient, type DetqQueues } from '@detq/queue';
import { inScope, type TokenEntry, type TokenStore } from './token-store';
import { openApiDocument } from './openapi';
import { renderMetrics } from './metrics';

export interface ServerOptions {
  queues: DetqQueues;
  tokens: TokenStore;
  /** Checked by /readyz: resolves when S3 answers. */
  s3Ready: () => Promise<void>;
  /** Request body limit in bytes. */
  bodyLimit?: number;
  webhookHosts?: readonly string[];
  /** How often an SSE stream looks for progress. */
  eventsIntervalMs?: number;
  logger?: boolean;
}

type Field = { field: string; message: string };

function problem(reply: FastifyReply, status: number, error: string, fields?: Field[]) {
  return reply.code(status).send(fields ? { error, fields } : { error });
}

/** Every URI of a spec with the field it came from, for the scope check. */
function urisOf(spec: JobSpec): Field[] {
  const { input, output, model } = spec;
  return [
    ...(input.uri ? [{ field: 'input.uri', message: input.uri }] : []),
    ...(input.manifest ? [{ field: 'input.manifest', message: input.manifest }] : []),
    ...(input.images ?? []).map((u, i) => ({ field: `input.images.${i}`, message: u })),
    { field: 'output.uri', message: output.uri },
    ...(model ? [{ field: 'model.uri', message: model.uri }] : []),
  ];
}

/**
 * The enqueue API. Validation answers name every invalid field; no answer ever carries a stack trace.
 * Planning never happens here: a POST only records the job and adds one set job to the queue.
 */
export function createServer(options: ServerOptions): FastifyInstance {
  const { queues, tokens } = options;
  const jobs = new JobClient(queues);
  const schedules = new ScheduleClient(queues);
  const webhookHosts = options.webhookHosts ?? [];
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimit ?? 1024 * 1024 });

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return problem(reply, 413, `body larger than ${options.bodyLimit ?? 1024 * 1024} bytes`);
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return problem(reply, err.statusCode, err.message);
    req.log.error(err);
    return problem(reply, 500, 'internal error');
  });

  const authed = (req: FastifyRequest, reply: FastifyReply): TokenEntry | undefined => {
    const token = tokens.verify(req.headers.authorization);
    if (!token) void problem(reply, 401, 'a valid bearer token is required');
    return token;
  };

  /** Parses and authorises a spec, or answers 400/403 and returns undefined. */
  const admit = (token: TokenEntry, body: unknown, reply: FastifyReply, path: string[] = []): JobSpec | undefined => {
    const parsed = jobSpecSchema.safeParse(body);
    if (!parsed.success) {
      void problem(reply, 400, 'invalid job spec', describeIssues(parsed.error).map((f) => ({ ...f, field: [...path, f.field].join('.') })));
      return undefined;
    }
    const spec = parsed.data;
    if (spec.webhook && !isWebhookAllowed(spec.webhook.url, webhookHosts)) {
      void problem(reply, 400, 'invalid job spec', [{ field: [...path, 'webhook.url'].join('.'), message: 'host is not on the webhook allowlist' }]);
      return undefined;
    }
    const outside = urisOf(spec).filter((u) => !inScope(u.message, token.scopes));
    if (outside.length) {
      void problem(reply, 403, `outside the scopes of token ${token.name}`, outside.map((u) => ({ field: [...path, u.field].join('.'), message: `${u.message} is not in scope` })));
      return undefined;
    }
    return spec;
  };

  const links = (id: string) => ({ self: `/v1/jobs/${id}`, events: `/v1/jobs/${id}/events`, cancel: `/v1/jobs/${id}/cancel` });

  app.post('/v1/jobs', async (req, reply) => {
    const token = authed(req, reply);
    if (!token) return reply;
    const spec = admit(token, req.body, reply);
    if (!spec) return reply;
    const res = await jobs.enqueue(spec, token.name).catch((err: unknown) => {
      if (err instanceof OutputBusyError) return err;
      throw err;
    });
    if (res instanceof OutputBusyError) return reply.code(409).send({ error: res.message, runningJob: res.runningJobId });
    return reply.code(res.existing ? 200 : 202).send({ id: res.id, status: res.status, existing: res.existing, links: links(res.id) });
  });

  app.get('/v1/jobs', async (req, reply) => {
    if (!authed(req, reply)) return reply;
    const q = req.query as Record<string, string | undefined>;
    const fields: Field[] = [];
    const status = q.status === undefined ? undefined : jobStatusSchema.safeParse(q.status);
    if (status && !status.success) fields.push({ field: 'status', message: `one of ${jobStatusSchema.options.join(', ')}` });
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) fields.push({ field: 'limit', message: 'an integer from 1 to 200' });
    const cursor = q.cursor === undefined ? undefined : Number(q.cursor);
    if (cursor !== undefined && !Number.isFinite(cursor)) fields.push({ field: 'cursor', message: 'the `next` of a previous page' });
    if (fields.length) return problem(reply, 400, 'invalid query', fields);
    const page = await jobs.list({ limit, ...(status?.data && { status: status.data }), ...(cursor !== undefined && { cursor }) });
    return { jobs: page.jobs, ...(page.next !== undefined && { next: String(page.next) }) };
  });

  app.get('/v1/jobs/:id', async (req, reply) => {
    if (!authed(req, reply)) return reply;
    const view = await jobs.view((req.params as { id: string }).id);
    return view ?? problem(reply, 404, 'no such job');
  });

  app.post('/v1/jobs/:id/cancel', async (req, reply) => {
    if (!authed(req, reply)) return reply;
    const { id } = req.params as { id: string };
    const res = await jobs.cancel(id);
    if (res === 'not_found') return problem(reply, 404, 'no such job');
    if (res === 'already_ended') return problem(reply, 409, 'the job has already ended');
    return { id, status: 'cancelled' };
  });

  app.get('/v1/jobs/:id/events', async (req, reply) => {
    if (!authed(req, reply)) return reply;
    const { id } = req.params as { id: string };
    const first = await jobs.view(id);
    if (!first) return problem(reply, 404, 'no such job');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let last = '';
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      clearTimeout(timer);
      res.end();
    };
    req.raw.on('close', () => clearTimeout(timer));
    // Polls the job (two Redis reads) instead of making workers publish per image: progress stays O(chunks).
    const tick = async () => {
      const view = await jobs.view(id).catch(() => undefined);
      if (!view) return stop();
      const json = JSON.stringify(view);
      if (json !== last) res.write(`event: progress\ndata: ${json}\n\n`);
      last = json;
      if (TERMINAL_STATUSES.includes(view.status)) {
        res.write(`event: end\ndata: ${json}\n\n`);
        return stop();
      }
      if (!res.destroyed) timer = setTimeout(() => void tick(), options.eventsIntervalMs ?? 1000);
    };
    await tick();
  });

  app.post('/v1/schedules', async (req, reply) => {
    const token = authed(req, reply);
    if (!token) return reply;
    const parsed = scheduleSpecSchema.safeParse(req.body);
    if (!parsed.success) return problem(reply, 400, 'invalid schedule', describeIssues(parsed.error));
    if (!admit(token, (req.body as { spec: unknown }).spec, reply, ['spec'])) return reply;
    try {
      return reply.code(201).send(await schedules.add(parsed.data));
    } catch (err) {
      if (err instanceof DetqError) return problem(reply, 400, 'invalid schedule', [{ field: 'cron', message: err.message }]);
      throw err;
    }
  });

  app.get('/v1/schedules', async (req, reply) => {
    if (!authed(req, reply)) return reply;
    return { schedules: await schedules.list() };
  });

  app.delete('/v1/schedules/:id', async (req, reply) => {
    if (!authed(req, reply)) return reply;
    const removed = await schedules.remove((req.params as { id: string }).id);
    return removed ? reply.code(204).send() : problem(reply, 404, 'no such schedule');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const checks = await Promise.all([
      queues.redis.ping().then(() => 'ok', (e: Error) => e.message),
      options.s3Ready().then(() => 'ok', (e: Error) => e.message),
    ]);
    const [redis, s3] = checks;
    return reply.code(checks.every((c) => c === 'ok') ? 200 : 503).send({ redis, s3 });
  });

  app.get('/metrics', async (_req, reply) => {
    const [status, workers, errors, depth] = await Promise.all([
      queues.metrics.statusCounts(),
      queues.metrics.workers(),
      queues.metrics.errors(),
      queues.chunks.getJobCounts('waiting', 'prioritized', 'active', 'delayed'),
    ]);
    return reply
      .type('text/plain; version=0.0.4')
      .send(renderMetrics({ ...status, workers, errors, depth, queue: CHUNK_QUEUE }));
  });

  app.get('/openapi.json', async () => openApiDocument());

  return app;
}
