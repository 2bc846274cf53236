import { z } from 'zod';
import { jobSpecSchema, jobStatusSchema, scheduleSpecSchema } from './job-spec';

/**
 * Request and response bodies of the HTTP API. The API validates with them and the OpenAPI document
 * is generated from them (apps/api), so the contract cannot drift from the code.
 */

export const errorBodySchema = z
  .object({
    error: z.string(),
    fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Error' });

/** 409 on enqueue: another live job already writes to that output prefix. */
export const outputBusySchema = z.object({ error: z.string(), runningJob: z.string().describe('the live job that holds the output prefix') });

/** What GET /v1/jobs/:id, `detq status` and `detq watch` show. */
export const jobViewSchema = z
  .object({
    id: z.string(),
    status: jobStatusSchema,
    counts: z.object({ total: z.number().int(), done: z.number().int(), failed: z.number().int() }),
    progress: z.number().nullable().describe('0..1; null while the total is still being planned'),
    imagesPerSecond: z.number(),
    eta: z.number().nullable().describe('seconds left at the current rate; null when unknown'),
    output: z.string(),
    createdAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    error: z.string().optional(),
    scheduleId: z.string().optional(),
    owner: z.string().optional().describe('the token name that made the job'),
    message: z.string().optional().describe('a note on how the job ended, e.g. that an incremental run found nothing new'),
    model: z.string().optional().describe("the spec's model URI; absent when the job uses the deployment's default model"),
    metadata: jobSpecSchema.shape.metadata,
  })
  .meta({ id: 'JobView' });
export type JobView = z.infer<typeof jobViewSchema>;

export const enqueueResponseSchema = z.object({
  id: z.string(),
  status: jobStatusSchema,
  existing: z.boolean().describe('true when the idempotency key matched an existing job'),
  links: z.object({ self: z.string(), events: z.string(), cancel: z.string() }),
});

export const jobListQuerySchema = z.strictObject({
  status: jobStatusSchema.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().regex(/^\d+$/, 'the `next` of a previous page').optional(),
});

export const jobListSchema = z.object({ jobs: z.array(jobViewSchema), next: z.string().optional() });

export const idParamsSchema = z.object({ id: z.string().min(1).max(200) });

export const scheduleViewSchema = z
  .object({
    id: z.string(),
    cron: z.string(),
    tz: z.string().optional(),
    next: z.string().optional(),
    owner: z.string().optional(),
  })
  .meta({ id: 'ScheduleView' });
export type ScheduleView = z.infer<typeof scheduleViewSchema>;

export const scheduleListSchema = z.object({ schedules: z.array(scheduleViewSchema) });

export const cancelResponseSchema = z.object({ id: z.string(), status: z.literal('cancelled') });

/** A worker's last report (the workers page, `GET /v1/workers` with the worker's id added). */
export const workerStatsSchema = z.object({
  batches: z.number().int(),
  frames: z.number().int(),
  fill: z.number(),
  /** ms since epoch of the report. */
  at: z.number(),
  /** What the dashboard's workers page shows (absent in reports of older workers); the model is the worker's default. */
  model: z.string().optional(),
  engine: z.string().optional(),
  device: z.string().optional(),
  /** Chunk jobs being labelled at the time of the report. */
  activeChunks: z.number().int().optional(),
  /** Frames per second since the worker's previous report. */
  imagesPerSecond: z.number().optional(),
});
export type WorkerStats = z.infer<typeof workerStatsSchema>;

export const readinessSchema = z.object({
  redis: z.string().describe('"ok", or why Redis is not usable'),
  s3: z.string().describe('"ok", or why S3 is not usable'),
});

export { jobSpecSchema, scheduleSpecSchema };
