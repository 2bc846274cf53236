import { z } from 'zod';
import { detectParamsSchema, outputFormatSchema } from './schemas';
import { globProblem } from './glob';
import { checkS3Uri } from './uri';

/**
 * The distributed job spec: one schema shared by the API, the CLI and the worker. Objects are strict so
 * a misspelt field is reported by name instead of being silently ignored.
 */

/**
 * Only s3:// is accepted (the service never fetches http(s) URLs on a caller's behalf), and only in
 * canonical form (see uri.ts): scopes are checked on exactly the segments the store will use.
 */
export const s3UriSchema = z
  .string()
  .max(1024)
  .superRefine((uri, ctx) => {
    const r = checkS3Uri(uri);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
  });

/** A glob the linear-time matcher accepts (see glob.ts). */
const globSchema = z
  .string()
  .min(1)
  .max(256)
  .superRefine((g, ctx) => {
    const problem = globProblem(g);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** Job priorities run 1 (first) to MAX_PRIORITY; a job that gives none sits in the middle. */
export const MAX_PRIORITY = 1_000;
export const DEFAULT_PRIORITY = 500;

/** Upper bound of an inline image list; bigger sets go through a prefix or a manifest. */
export const MAX_INLINE_IMAGES = 10_000;

/** Include/exclude globs apply to every kind of input, matched against each image's key. */
export const jobInputSchema = z
  .strictObject({
    uri: s3UriSchema.optional(),
    include: z.array(globSchema).max(64).optional(),
    exclude: z.array(globSchema).max(64).optional(),
    manifest: s3UriSchema.regex(/\.(jsonl|csv)$/i, 'must end in .jsonl or .csv').optional(),
    images: z.array(s3UriSchema).min(1).max(MAX_INLINE_IMAGES).optional(),
  })
  .superRefine((input, ctx) => {
    const given = (['uri', 'manifest', 'images'] as const).filter((k) => input[k] !== undefined);
    if (given.length !== 1)
      ctx.addIssue({ code: 'custom', message: 'give exactly one of uri, manifest or images', path: given.length > 1 ? [given[1]!] : [] });
  });
export type JobInput = z.infer<typeof jobInputSchema>;

export const jobOutputSchema = z.strictObject({
  uri: s3UriSchema,
  formats: z.array(outputFormatSchema).min(1).default(['jsonl']),
});

export const jobModelSchema = z.strictObject({
  uri: s3UriSchema,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').optional(),
});

/** Ultralytics' post-processing params plus imgsz (a square side, a multiple of the stride). */
export const jobParamsSchema = detectParamsSchema.extend({
  imgsz: z.number().int().min(32).max(4096).multipleOf(32).optional(),
}).strict();
export type JobParams = z.infer<typeof jobParamsSchema>;

export const jobSpecSchema = z.strictObject({
  input: jobInputSchema,
  output: jobOutputSchema,
  model: jobModelSchema.optional(),
  params: jobParamsSchema.default(() => jobParamsSchema.parse({})),
  /** 1 is served first; jobs without one get DEFAULT_PRIORITY (whatever BullMQ's own encoding). */
  priority: z.number().int().min(1).max(MAX_PRIORITY).optional(),
  idempotencyKey: z.string().min(1).max(200).optional(),
  metadata: z.record(z.string().max(64), z.union([z.string().max(1024), z.number(), z.boolean()])).optional(),
  /** Called with the summary when the job ends; the host must be on the deployment's allowlist. */
  webhook: z
    .strictObject({
      url: z
        .url({ protocol: /^https?$/ })
        .max(2048)
        // eslint-disable-next-line no-control-regex
        .refine((u) => !/[\u0000-\u001f\u007f-\u009f]/.test(u), 'must not contain control characters'),
    })
    .optional(),
  /** Images per chunk job. */
  chunkSize: z.number().int().min(1).max(4096).default(256),
  /** Skip images already labelled with the same model sha256 and params (by key + ETag). */
  incremental: z.boolean().default(false),
});
export type JobSpec = z.infer<typeof jobSpecSchema>;
export type JobSpecInput = z.input<typeof jobSpecSchema>;

export const jobStatusSchema = z.enum([
  'queued',
  'planning',
  'running',
  'completed',
  'completed_with_errors',
  'failed',
  'cancelled',
]);
export type JobStatus = z.infer<typeof jobStatusSchema>;
export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'completed_with_errors', 'failed', 'cancelled'];

export const scheduleSpecSchema = z.strictObject({
  /** Scheduler id: adding the same id again replaces it. */
  id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (1-64)'),
  cron: z.string().min(9).max(128),
  tz: z.string().max(64).optional(),
  spec: jobSpecSchema,
});
export type ScheduleSpec = z.infer<typeof scheduleSpecSchema>;

/** One line per invalid field, `path: message`, for 400 answers and CLI errors. */
export function describeIssues(error: z.ZodError): { field: string; message: string }[] {
  const name = (path: readonly PropertyKey[]) => path.map(String).join('.') || '(body)';
  return error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? i.keys.map((k) => ({ field: name([...i.path, k]), message: 'unknown field' }))
      : [{ field: name(i.path), message: i.message }],
  );
}
