import { z } from 'zod';

/** Query strings of the dashboard's API routes (numbers and flags arrive as text). */
const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

export const recordsQuerySchema = z.strictObject({
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(200).default(24),
  /** Only images with at least one detection of this class name (and only those detections). */
  class: z.string().min(1).max(128).optional(),
  /** Only detections at or above this confidence. */
  minConfidence: z.coerce.number().min(0).max(1).default(0),
  /** Only images that got an error record. */
  errorsOnly: flag.default(false),
});
export type RecordsQuery = z.infer<typeof recordsQuerySchema>;

export const imageQuerySchema = z.strictObject({
  key: z.string().min(1).max(2048),
  size: z.enum(['thumb', 'full']).default('thumb'),
});

export const outputFileQuerySchema = z.strictObject({ uri: z.string().min(1).max(2048) });

export const cronPreviewQuerySchema = z.strictObject({
  cron: z.string().min(9).max(128),
  tz: z.string().max(64).optional(),
  count: z.coerce.number().int().min(1).max(20).default(5),
});
