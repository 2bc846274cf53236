import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CronExpressionParser } from 'cron-parser';
import { LRUCache } from 'lru-cache';
import sharp from 'sharp';
import type { z } from 'zod';
import {
  cronPreviewQuerySchema,
  describeIssues,
  imageQuerySchema,
  imageRecordSchema,
  inScope,
  outputFileQuerySchema,
  recordsQuerySchema,
  TERMINAL_STATUSES,
  type ImageRecord,
  type JobSpec,
} from '@detq/core';
import { serveDashboard } from '@detq/dashboard';
import { chunkJobId, chunkResultKey, JobClient, type DetqQueues, type JobState } from '@detq/queue';
import { joinUri, type ObjectStore } from '@detq/storage';
import type { TokenEntry, TokenStore } from './token-store';

export interface DashboardRoutesOptions {
  queues: DetqQueues;
  tokens: TokenStore;
  /** Where job inputs and outputs are read from; without it the image and file routes answer 503. */
  store?: ObjectStore;
  /** Largest source image the API decodes for a thumbnail (bytes). */
  maxImageBytes?: number;
  /** Largest output object the API hands out (bytes). */
  maxDownloadBytes?: number;
}

const THUMB_SIDE = 320;
const FULL_SIDE = 1600;

/** Record key → image URI, as the planner made it (relative to an input prefix, or the URI itself). */
function imageUri(spec: JobSpec, key: string): string {
  const prefix = spec.input.uri === undefined ? '' : spec.input.uri.endsWith('/') ? spec.input.uri : `${spec.input.uri}/`;
  return prefix + key;
}

const parseRecords = (body: Buffer): ImageRecord[] =>
  body
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => imageRecordSchema.parse(JSON.parse(l)));

/**
 * What the dashboard needs beyond the job API: a job's records (paged, filtered), its images as
 * thumbnails with sharp, its output files, throughput from its chunks, workers and a cron preview.
 * Every route is token-checked; a job is visible to a token when all of its URIs are in the token's
 * scopes, and an image or file is served only when it belongs to the job and is itself in scope.
 */
export async function dashboardRoutes(app: FastifyInstance, options: DashboardRoutesOptions): Promise<void> {
  const { queues, tokens, store } = options;
  const maxImageBytes = options.maxImageBytes ?? 50 * 1024 * 1024;
  const maxDownloadBytes = options.maxDownloadBytes ?? 100 * 1024 * 1024;
  // Parsed chunk results by URI and ETag, bounded by the number of records held.
  const chunkCache = new LRUCache<string, ImageRecord[]>({ maxSize: 200_000, sizeCalculation: (r) => Math.max(1, r.length) });
  const imageCache = new LRUCache<string, Buffer>({ maxSize: 64 * 1024 * 1024, sizeCalculation: (b) => b.length });

  await serveDashboard(app);

  const fail = (reply: FastifyReply, status: number, error: string, fields?: { field: string; message: string }[]) =>
    reply.code(status).send(fields ? { error, fields } : { error });

  const query = <S extends z.ZodType>(schema: S, req: FastifyRequest, reply: FastifyReply): z.infer<S> | undefined => {
    const parsed = schema.safeParse(req.query);
    if (parsed.success) return parsed.data;
    void fail(reply, 400, 'invalid query', describeIssues(parsed.error));
    return undefined;
  };

  /** The job and the token asking for it, or an answer (401/404) already sent. */
  const visibleJob = async (req: FastifyRequest, reply: FastifyReply): Promise<{ token: TokenEntry; job: JobState } | undefined> => {
    const token = tokens.verify(req.headers.authorization);
    if (!token) return void fail(reply, 401, 'a valid bearer token is required');
    const job = await queues.jobs.get((req.params as { id: string }).id);
    // Other tenants' jobs answer 404 like missing ones, so their ids are not confirmed.
    if (!job || !(job.principal === token.name || token.roles.includes('admin'))) return void fail(reply, 404, 'no such job');
    return { token, job };
  };

  const needStore = (reply: FastifyReply): ObjectStore | undefined => store ?? void fail(reply, 503, 'no object store configured');

  /**
   * Every record written so far, in chunk order. One listing says which chunk objects exist (and their
   * ETags, so a chunk rewritten by a retry is read again); chunks not written yet are skipped.
   */
  const recordsOf = async (s: ObjectStore, job: JobState): Promise<ImageRecord[]> => {
    const uris = Array.from({ length: job.chunks }, (_, i) => joinUri(job.output, chunkResultKey(job.id, i)));
    if (!uris[0]) return [];
    const written = new Map<string, string>();
    for await (const e of s.list(uris[0].slice(0, uris[0].lastIndexOf('/') + 1))) written.set(e.uri, e.etag ?? String(e.size));
    const chunks = await Promise.all(
      uris.map(async (uri) => {
        const tag = written.get(uri);
        if (tag === undefined) return [];
        const key = `${uri}\n${tag}`;
        let records = chunkCache.get(key);
        if (!records) chunkCache.set(key, (records = parseRecords(await s.get(uri))));
        return records;
      }),
    );
    return chunks.flat();
  };

  /** Size and ETag of one object, from a listing of its own key (so nothing big is read to refuse it). */
  const head = async (s: ObjectStore, uri: string) => {
    for await (const e of s.list(uri)) if (e.uri === uri) return e;
    return undefined;
  };

  app.get('/v1/jobs/:id/detail', async (req, reply) => {
    const seen = await visibleJob(req, reply);
    if (!seen) return reply;
    const { job } = seen;
    const view = JobClient.toView(job, Date.now());
    const ended = TERMINAL_STATUSES.includes(job.status);
    const summaryBody = ended && store ? await store.get(joinUri(job.output, 'summary.json')).catch(() => undefined) : undefined;
    const { input, output, model, params, chunkSize, priority, incremental } = job.spec;
    return { job: view, spec: { input, output, model, params, chunkSize, priority, incremental }, summary: summaryBody ? JSON.parse(summaryBody.toString('utf8')) : null };
  });

  app.get('/v1/jobs/:id/records', async (req, reply) => {
    const seen = await visibleJob(req, reply);
    if (!seen) return reply;
    const q = query(recordsQuerySchema, req, reply);
    const s = q && needStore(reply);
    if (!q || !s) return reply;
    const all = await recordsOf(s, seen.job);
    const classes: Record<string, number> = {};
    const errors: Record<string, number> = {};
    const matching: ImageRecord[] = [];
    for (const r of all) {
      if (r.error) errors[r.error.code] = (errors[r.error.code] ?? 0) + 1;
      for (const d of r.detections) classes[d.class_name] = (classes[d.class_name] ?? 0) + 1;
      if (q.errorsOnly) {
        if (r.error) matching.push(r);
        continue;
      }
      const detections = r.detections.filter((d) => d.confidence >= q.minConfidence && (q.class === undefined || d.class_name === q.class));
      if (q.class === undefined || detections.length) matching.push({ ...r, detections });
    }
    const page = matching.slice(q.offset, q.offset + q.limit).map(({ key, width, height, detections, error }) => ({ key, width, height, detections, ...(error && { error }) }));
    return { total: matching.length, offset: q.offset, records: page, classes, errors, written: all.length };
  });

  app.get('/v1/jobs/:id/image', async (req, reply) => {
    const seen = await visibleJob(req, reply);
    if (!seen) return reply;
    const q = query(imageQuerySchema, req, reply);
    const s = q && needStore(reply);
    if (!q || !s) return reply;
    const records = await recordsOf(s, seen.job);
    if (!records.some((r) => r.key === q.key && !r.error)) return fail(reply, 404, 'no labelled image with this key in the job');
    const uri = imageUri(seen.job.spec, q.key);
    if (!inScope(uri, seen.token.scopes)) return fail(reply, 403, `${uri} is not in the scopes of token ${seen.token.name}`);
    const entry = await head(s, uri);
    if (!entry) return fail(reply, 404, `${uri} no longer exists`);
    if (entry.size > maxImageBytes) return fail(reply, 413, `${uri} is larger than ${maxImageBytes} bytes`);
    const cacheKey = `${uri}\n${entry.etag ?? entry.size}\n${q.size}`;
    let body = imageCache.get(cacheKey);
    if (!body) {
      const side = q.size === 'thumb' ? THUMB_SIDE : FULL_SIDE;
      // No EXIF rotation: boxes are in the pixel frame the decoder labelled.
      body = await sharp(await s.get(uri), { limitInputPixels: 100_000_000 })
        .resize(side, side, { fit: 'inside', withoutEnlargement: true })
        .jpeg({ quality: q.size === 'thumb' ? 70 : 85 })
        .toBuffer();
      imageCache.set(cacheKey, body);
    }
    return reply.type('image/jpeg').header('cache-control', 'private, max-age=3600').send(body);
  });

  app.get('/v1/jobs/:id/file', async (req, reply) => {
    const seen = await visibleJob(req, reply);
    if (!seen) return reply;
    const q = query(outputFileQuerySchema, req, reply);
    const s = q && needStore(reply);
    if (!q || !s) return reply;
    const output = seen.job.output.endsWith('/') ? seen.job.output : `${seen.job.output}/`;
    if (!q.uri.startsWith(output) || q.uri.includes('/../')) return fail(reply, 400, 'invalid query', [{ field: 'uri', message: `not an output of this job (under ${output})` }]);
    const entry = await head(s, q.uri);
    if (!entry) return fail(reply, 404, `${q.uri} does not exist`);
    if (entry.size > maxDownloadBytes) return fail(reply, 413, `${q.uri} is larger than ${maxDownloadBytes} bytes: fetch it from the store`);
    const name = q.uri.slice(q.uri.lastIndexOf('/') + 1);
    return reply.type(name.endsWith('.json') ? 'application/json' : 'application/octet-stream').header('content-disposition', `attachment; filename="${name.replace(/"/g, '')}"`).send(await s.get(q.uri));
  });

  app.get('/v1/jobs/:id/throughput', async (req, reply) => {
    const seen = await visibleJob(req, reply);
    if (!seen) return reply;
    // Images per finished chunk at its finish time; at most 400 chunks are read (evenly spread).
    const { job } = seen;
    const step = Math.max(1, Math.ceil(job.chunks / 400));
    const picks = Array.from({ length: Math.ceil(job.chunks / step) }, (_, i) => i * step);
    const chunkJobs = await Promise.all(picks.map((i) => queues.chunks.getJob(chunkJobId(job.id, i))));
    const points = chunkJobs
      .filter((j) => j?.finishedOn && j.returnvalue)
      .map((j) => ({ at: j!.finishedOn!, images: ((j!.returnvalue as { images?: number }).images ?? 0) * step }))
      .sort((a, b) => a.at - b.at);
    return { startedAt: job.startedAt ?? null, points };
  });

  app.get('/v1/workers', async (req, reply) => {
    if (!tokens.verify(req.headers.authorization)) return fail(reply, 401, 'a valid bearer token is required');
    const workers = await queues.metrics.workers();
    return { workers: Object.entries(workers).map(([id, w]) => ({ id, ...w })).sort((a, b) => a.id.localeCompare(b.id)) };
  });

  app.get('/v1/cron/next', async (req, reply) => {
    if (!tokens.verify(req.headers.authorization)) return fail(reply, 401, 'a valid bearer token is required');
    const q = query(cronPreviewQuerySchema, req, reply);
    if (!q) return reply;
    try {
      // The parser BullMQ's job schedulers use, so the preview is what will run.
      const interval = CronExpressionParser.parse(q.cron, { currentDate: new Date(), ...(q.tz && { tz: q.tz }) });
      return { next: interval.take(q.count).map((d) => d.toISOString()) };
    } catch (err) {
      return fail(reply, 400, 'invalid schedule', [{ field: 'cron', message: (err as Error).message }]);
    }
  });
}
