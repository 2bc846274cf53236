import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  cancelResponseSchema,
  DetqError,
  DETQ_VERSION,
  enqueueResponseSchema,
  errorBodySchema,
  outputBusySchema,
  idParamsSchema,
  inScope,
  jobListQuerySchema,
  jobListSchema,
  jobSpecSchema,
  jobViewSchema,
  outOfScope,
  overCaps,
  readinessSchema,
  scheduleListSchema,
  scheduleSpecSchema,
  scheduleViewSchema,
  TERMINAL_STATUSES,
  type FieldProblem,
  type JobSpec,
  type ResolvedCaps,
} from '@detq/core';
import { manifestImageUris } from '@detq/pipeline';
import { DEFAULT_MIN_SCHEDULE_INTERVAL_S, JobClient, OutputBusyError, ScheduleClient, webhookAddressProblem, type Caller, type DetqQueues, type WebhookPolicy } from '@detq/queue';
import type { TokenEntry, TokenStore } from './token-store';
import { createMetricsRegistry } from './metrics';
import { dashboardRoutes } from './dashboard-routes';
import type { ObjectStore } from '@detq/storage';

export interface Quotas {
  /** Requests per second per token (@fastify/rate-limit). */
  ratePerSecond: number;
  /** Unfinished jobs per token. */
  maxActiveJobs: number;
  /** Images per token over its unfinished jobs. */
  maxQueuedImages: number;
}

export const DEFAULT_QUOTAS: Quotas = { ratePerSecond: 20, maxActiveJobs: 100, maxQueuedImages: 5_000_000 };
export const DEFAULT_CAPS: ResolvedCaps = { maxImgsz: 1280, maxImages: 10_000_000, maxObjectBytes: 64 * 1024 * 1024 };

/** One line per mutating request, whatever its outcome. */
export interface AuditEntry {
  principal: string | null;
  method: string;
  route: string;
  jobId?: string;
  status: number;
}

export interface ServerOptions {
  queues: DetqQueues;
  tokens: TokenStore;
  /** Checked by /readyz: resolves when S3 answers. */
  s3Ready: () => Promise<void>;
  /** Request body limit in bytes. */
  bodyLimit?: number;
  webhooks?: WebhookPolicy;
  /** How often an SSE stream looks for progress. */
  eventsIntervalMs?: number;
  quotas?: Partial<Quotas>;
  /** Deployment caps for tokens that set none. */
  caps?: Partial<ResolvedCaps>;
  minScheduleIntervalS?: number;
  /** Serve /metrics here (behind a token with the `metrics` or `admin` role); false when a separate port serves it. */
  metricsRoute?: boolean;
  audit?: (entry: AuditEntry) => void;
  /**
   * Reads a manifest for the enqueue-time scope check of its lines; undefined when it is too big to
   * check at enqueue (its lines are then checked at planning: FORBIDDEN records) or unreadable.
   */
  readManifest?: (uri: string) => Promise<string | undefined>;
  logger?: boolean;
  /** Object store the dashboard reads job images and outputs from. */
  store?: ObjectStore;
}

declare module 'fastify' {
  interface FastifyRequest {
    token?: TokenEntry;
    /** The job a mutating request made or touched, for the audit line. */
    auditJobId?: string;
  }
  interface FastifyContextConfig {
    /** The `error` of a 400 for this route's invalid input. */
    invalid?: string;
    /** No token needed (health, docs). */
    public?: boolean;
    /** Answers even while Redis is unreachable. */
    withoutRedis?: boolean;
  }
}

const QUEUE_UNAVAILABLE = 'queue unavailable';

/** ioredis' and the socket's ways of saying that Redis went away (before `status` has caught up). */
function isConnectionError(err: { code?: string; name?: string; message: string }): boolean {
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT'].includes(err.code ?? '') ||
    /Connection is closed|Stream isn't writeable|connect ECONNREFUSED|read ECONNRESET/.test(err.message)
  );
}

type ZodApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>;

function problem(reply: FastifyReply, status: number, error: string, fields?: FieldProblem[]) {
  return reply.code(status).send(fields ? { error, fields } : { error });
}

/** zod issues as the plugin hands them over, as `{field, message}` with dotted paths. */
function fieldsOf(validation: { instancePath: string; keyword: string; message?: string; params: Record<string, unknown> }[]): FieldProblem[] {
  return validation.flatMap((v) => {
    const path = v.instancePath.split('/').filter(Boolean);
    if (v.keyword === 'unrecognized_keys')
      return ((v.params.keys as string[] | undefined) ?? []).map((k) => ({ field: [...path, k].join('.'), message: 'unknown field' }));
    return [{ field: path.join('.') || '(body)', message: v.message ?? 'invalid' }];
  });
}

const errors = { 400: errorBodySchema, 401: errorBodySchema, 404: errorBodySchema, 429: errorBodySchema, 503: errorBodySchema };

/**
 * The enqueue API as a multi-tenant service. Every resource belongs to the token (principal) that made
 * it; another tenant's resource answers 404 exactly like a missing one, unless the token is `admin`.
 * Request and response bodies are the zod schemas of @detq/core, which also generate /openapi.json.
 * Planning never happens here: a POST only records the job and adds one set job to the queue.
 */
export function createServer(options: ServerOptions): FastifyInstance {
  const { queues, tokens } = options;
  const quotas = { ...DEFAULT_QUOTAS, ...options.quotas };
  const caps = { ...DEFAULT_CAPS, ...options.caps };
  const webhooks = options.webhooks ?? { hosts: [], allowPrivate: false };
  const jobs = new JobClient(queues);
  const schedules = new ScheduleClient(queues, options.minScheduleIntervalS ?? DEFAULT_MIN_SCHEDULE_INTERVAL_S);
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const root = Fastify({ logger: options.logger ?? false, bodyLimit });
  const app = root.withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const redisDown = () => queues.redis.status !== 'ready';
  const unavailable = (reply: FastifyReply) => reply.header('retry-after', '1').code(503).send({ error: QUEUE_UNAVAILABLE });

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string; headers?: Record<string, string> }, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err))
      return problem(reply, 400, req.routeOptions.config.invalid ?? 'invalid request', fieldsOf(err.validation));
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return problem(reply, 413, `body larger than ${bodyLimit} bytes`);
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return problem(reply, err.statusCode, err.message);
    // A command that failed because Redis went away between the check and the command.
    if (redisDown() || isConnectionError(err)) return unavailable(reply);
    req.log.error(err);
    return problem(reply, 500, 'internal error');
  });

  // Before anything that may touch Redis: while it is unreachable, answer at once instead of hanging.
  // The API reference (/docs, served by @fastify/swagger-ui) is public and needs no Redis.
  const isDocs = (req: FastifyRequest) => req.url === '/docs' || req.url.startsWith('/docs/');
  app.addHook('onRequest', async (req, reply) => {
    if (isDocs(req)) return;
    if (!req.routeOptions.config.withoutRedis && redisDown()) return unavailable(reply);
    if (req.routeOptions.config.public) return;
    const token = tokens.verify(req.headers.authorization);
    if (!token) return problem(reply, 401, 'a valid bearer token is required');
    req.token = token;
  });

  // Workers check each job against its token as it is when the job is planned: they learn the tokens
  // here (and from runApi on every reload and Redis reconnect).
  app.addHook('onReady', async () => {
    // Not connected yet (a starting `detq api`): runApi publishes on the connection's 'ready'.
    if (redisDown()) return;
    await queues.principals.replaceAll(tokens.principals(caps)).catch((err: Error) => app.log.warn(`tokens not published: ${err.message}`));
  });

  app.addHook('onResponse', async (req, reply) => {
    if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method)) return;
    const params = req.params as { id?: string } | undefined;
    const entry: AuditEntry = {
      principal: req.token?.name ?? null,
      method: req.method,
      route: req.routeOptions.url ?? req.url,
      ...((req.auditJobId ?? params?.id) && { jobId: req.auditJobId ?? params?.id }),
      status: reply.statusCode,
    };
    if (options.audit) options.audit(entry);
    else req.log.info({ audit: entry }, 'audit');
  });

  // Plugins first, then the routes (in a plugin of their own), so the rate limit and the OpenAPI
  // generator see every route.
  void app.register(rateLimit, {
    max: quotas.ratePerSecond,
    timeWindow: 1000,
    // Per token (by its hash, never the token itself); requests without one count per address.
    keyGenerator: (req) => req.token?.sha256 ?? req.ip,
    allowList: (req) => !!req.routeOptions.config.public || isDocs(req),
    errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, message: `rate limit: at most ${ctx.max} requests per second per token (DETQ_RATE_LIMIT)` }),
  });

  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'detq API', version: DETQ_VERSION, description: 'Label large image sets with YOLO11: enqueue, watch and cancel image-set jobs.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  void app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: false } });
  void app.register(async (scope) => routes(scope.withTypeProvider<ZodTypeProvider>()));
  void app.register(dashboardRoutes, { queues, tokens, store: options.store });
  return app;

  function routes(app: ZodApp) {

  const caller = (req: FastifyRequest): Caller => ({ principal: req.token!.name, admin: req.token!.roles.includes('admin') });
  const capsOf = (token: TokenEntry): ResolvedCaps => ({ ...caps, ...token.caps });

  /** Scopes, caps and webhook address of a spec; answers 403/400 and returns false when refused. */
  const admit = async (token: TokenEntry, spec: JobSpec, reply: FastifyReply, path: string[] = []): Promise<boolean> => {
    const at = (f: FieldProblem) => ({ ...f, field: [...path, f.field].join('.') });
    const tooBig = overCaps(spec, capsOf(token));
    if (tooBig.length) return void problem(reply, 400, 'over the caps of this token', tooBig.map(at)), false;
    if (spec.webhook) {
      const why = await webhookAddressProblem(spec.webhook.url, webhooks);
      if (why) return void problem(reply, 400, 'invalid webhook', [at({ field: 'webhook.url', message: why })]), false;
      if (!token.webhookSecret)
        return void problem(reply, 400, 'invalid webhook', [at({ field: 'webhook.url', message: `token ${token.name} has no webhookSecret to sign with` })]), false;
    }
    const outside = [...outOfScope(spec, token.scopes)];
    // Only a manifest the token may read is read.
    if (!outside.length && spec.input.manifest) outside.push(...(await manifestOutOfScope(spec.input.manifest, token.scopes)));
    if (outside.length) return void problem(reply, 403, `outside the scopes of token ${token.name}`, outside.map(at)), false;
    return true;
  };

  /** Lines of a small manifest outside the scopes (at most 20 named); a bad line is left to planning. */
  const manifestOutOfScope = async (uri: string, scopes: readonly string[]): Promise<FieldProblem[]> => {
    const text = options.readManifest && (await options.readManifest(uri).catch(() => undefined));
    if (!text) return [];
    const out: FieldProblem[] = [];
    try {
      for (const { line, uri: image } of manifestImageUris(text, uri)) {
        if (!inScope(image, scopes)) out.push({ field: 'input.manifest', message: `line ${line}: ${image} is not in scope` });
        if (out.length === 20) break;
      }
    } catch {
      // The planner reports a malformed manifest with its line.
    }
    return out;
  };

  /** Answers 429 naming the limit when the token is at its quota; returns false then. */
  const withinQuota = async (token: TokenEntry, spec: JobSpec, reply: FastifyReply): Promise<boolean> => {
    const usage = await queues.jobs.usage(token.name);
    reply.header('retry-after', '30');
    if (usage.jobs >= quotas.maxActiveJobs)
      return void problem(reply, 429, `quota: at most ${quotas.maxActiveJobs} unfinished jobs per token (DETQ_MAX_ACTIVE_JOBS)`), false;
    if (usage.images + (spec.input.images?.length ?? 0) > quotas.maxQueuedImages)
      return void problem(reply, 429, `quota: at most ${quotas.maxQueuedImages} queued images per token (DETQ_MAX_QUEUED_IMAGES)`), false;
    reply.removeHeader('retry-after');
    return true;
  };

  const links = (id: string) => ({ self: `/v1/jobs/${id}`, events: `/v1/jobs/${id}/events`, cancel: `/v1/jobs/${id}/cancel` });
  const notFound = (reply: FastifyReply) => problem(reply, 404, 'no such job');

  app.post(
    '/v1/jobs',
    {
      config: { invalid: 'invalid job spec' },
      schema: {
        summary: 'Enqueue an image-set job',
        body: jobSpecSchema,
        response: { 200: enqueueResponseSchema.describe('the job this idempotency key already created'), 202: enqueueResponseSchema, 403: errorBodySchema, 409: outputBusySchema, 413: errorBodySchema, ...errors },
      },
    },
    async (req, reply) => {
      const token = req.token!;
      if (!(await admit(token, req.body, reply))) return reply;
      if (!(await withinQuota(token, req.body, reply))) return reply;
      const res = await jobs.enqueue(req.body, { principal: token.name, caps: capsOf(token) }).catch((err: unknown) => {
        if (err instanceof OutputBusyError) return err;
        throw err;
      });
      if (res instanceof OutputBusyError) return reply.code(409).send({ error: res.message, runningJob: res.runningJobId });
      req.auditJobId = res.id;
      return reply.code(res.existing ? 200 : 202).send({ id: res.id, status: res.status, existing: res.existing, links: links(res.id) });
    },
  );

  app.get(
    '/v1/jobs',
    {
      config: { invalid: 'invalid query' },
      schema: { summary: 'List your jobs (every job for an admin token), newest first', querystring: jobListQuerySchema, response: { 200: jobListSchema, ...errors } },
    },
    async (req) => {
      const { status, limit, cursor } = req.query;
      const page = await jobs.list({ limit, ...(status && { status }), ...(cursor !== undefined && { cursor: Number(cursor) }) }, caller(req));
      return { jobs: page.jobs, ...(page.next !== undefined && { next: String(page.next) }) };
    },
  );

  app.get(
    '/v1/jobs/:id',
    { schema: { summary: 'Job status and progress', params: idParamsSchema, response: { 200: jobViewSchema, ...errors } } },
    async (req, reply) => (await jobs.view(req.params.id, caller(req))) ?? notFound(reply),
  );

  app.post(
    '/v1/jobs/:id/cancel',
    { schema: { summary: 'Cancel a job', params: idParamsSchema, response: { 200: cancelResponseSchema, 409: errorBodySchema, ...errors } } },
    async (req, reply) => {
      const { id } = req.params;
      const res = await jobs.cancel(id, caller(req));
      if (res === 'not_found') return notFound(reply);
      if (res === 'already_ended') return problem(reply, 409, 'the job has already ended');
      return { id, status: 'cancelled' as const };
    },
  );

  app.get(
    '/v1/jobs/:id/events',
    {
      schema: {
        summary: 'Server-sent events: `progress` (a JobView) on every change, then `end`',
        params: idParamsSchema,
        produces: ['text/event-stream'],
        response: { 200: z.string().describe('text/event-stream of JobView objects'), ...errors },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const who = caller(req);
      const first = await jobs.view(id, who);
      if (!first) return notFound(reply);
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
        const view = await jobs.view(id, who).catch(() => undefined);
        if (!view) return stop();
        const text = JSON.stringify(view);
        if (text !== last) res.write(`event: progress\ndata: ${text}\n\n`);
        last = text;
        if (TERMINAL_STATUSES.includes(view.status)) {
          res.write(`event: end\ndata: ${text}\n\n`);
          return stop();
        }
        if (!res.destroyed) timer = setTimeout(() => void tick(), options.eventsIntervalMs ?? 1000);
      };
      await tick();
    },
  );

  app.post(
    '/v1/schedules',
    {
      config: { invalid: 'invalid schedule' },
      schema: { summary: 'Add or replace one of your schedules', body: scheduleSpecSchema, response: { 201: scheduleViewSchema, 403: errorBodySchema, ...errors } },
    },
    async (req, reply) => {
      const token = req.token!;
      if (!(await admit(token, req.body.spec, reply, ['spec']))) return reply;
      try {
        const view = await schedules.add(req.body, { principal: token.name, caps: capsOf(token) });
        return reply.code(201).send(view);
      } catch (err) {
        if (err instanceof DetqError) return problem(reply, 400, 'invalid schedule', [{ field: 'cron', message: err.message.replace(/^cron: /, '') }]);
        throw err;
      }
    },
  );

  app.get(
    '/v1/schedules',
    { schema: { summary: 'List your schedules (every schedule for an admin token)', response: { 200: scheduleListSchema, ...errors } } },
    async (req) => ({ schedules: await schedules.list(caller(req)) }),
  );

  app.delete(
    '/v1/schedules/:id',
    { schema: { summary: 'Remove one of your schedules', params: idParamsSchema, response: { 204: z.null().describe('removed'), ...errors } } },
    async (req, reply) => ((await schedules.remove(req.params.id, caller(req))) ? reply.code(204).send(null) : problem(reply, 404, 'no such schedule')),
  );

  app.get(
    '/healthz',
    { config: { public: true, withoutRedis: true }, schema: { summary: 'The process is up', security: [], response: { 200: z.object({ status: z.literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { public: true, withoutRedis: true },
      schema: { summary: 'Redis and S3 are reachable; otherwise 503 says why', security: [], response: { 200: readinessSchema, 503: readinessSchema } },
    },
    async (_req, reply) => {
      const redis = redisDown()
        ? `redis is ${queues.redis.status} (unreachable)`
        : await queues.redis.ping().then(() => 'ok', (e: Error) => `redis is unreachable: ${e.message}`);
      const s3 = await options.s3Ready().then(() => 'ok', (e: Error) => e.message);
      return reply.code(redis === 'ok' && s3 === 'ok' ? 200 : 503).send({ redis, s3 });
    },
  );

  if (options.metricsRoute ?? true) {
    const registry = createMetricsRegistry(queues);
    app.get(
      '/metrics',
      { schema: { summary: 'Prometheus metrics (a token with the metrics or admin role)', produces: ['text/plain'], response: { 200: z.string(), 403: errorBodySchema, ...errors } } },
      async (req, reply) => {
        if (!req.token!.roles.some((r) => r === 'metrics' || r === 'admin')) return problem(reply, 403, 'metrics need a token with the metrics role');
        return reply.type(registry.contentType).send(await registry.metrics());
      },
    );
  }

  app.get('/openapi.json', { config: { public: true, withoutRedis: true }, schema: { hide: true } }, async () => root.swagger());
  }
}

/** A bare server for /metrics alone (DETQ_METRICS_PORT): no token, reachable only where that port is. */
export function createMetricsServer(queues: DetqQueues): FastifyInstance {
  const app = Fastify({ logger: false });
  const registry = createMetricsRegistry(queues);
  app.get('/metrics', async (_req, reply) => {
    if (queues.redis.status !== 'ready') return reply.header('retry-after', '1').code(503).send({ error: QUEUE_UNAVAILABLE });
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  return app;
}
