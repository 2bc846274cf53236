import { z } from 'zod';
import { detectParamsSchema, modelInfoSchema } from './schemas';

/**
 * The run summary (`summary.json`, `detq label --json`, the webhook body): one schema for local runs
 * and distributed jobs, so a consumer reads both the same way. Free of Node APIs, so the dashboard's
 * browser code takes its types from here; the builder (which reads the Node version) is beside it.
 */
export const summaryEngineSchema = z.object({
  kind: z.string(),
  runtimeVersion: z.string(),
  device: z.string(),
  precision: z.string(),
});
export type SummaryEngine = z.infer<typeof summaryEngineSchema>;

export const runSummarySchema = z.object({
  /** The distributed job id; absent for local runs. */
  id: z.string().optional(),
  status: z.enum(['completed', 'completed_with_errors', 'cancelled']),
  input: z.string(),
  output: z.string(),
  counts: z.object({
    /** Images in the results, each exactly once. */
    total: z.number().int().min(0),
    labelled: z.number().int().min(0),
    failed: z.number().int().min(0),
    detections: z.number().int().min(0),
    /** Local --resume: images whose records an earlier run had already written. */
    resumed: z.number().int().min(0),
    /** Distributed incremental jobs: images an earlier run labelled (their entries point at its records). */
    skipped: z.number().int().min(0).optional(),
    /** Distributed jobs: images not labelled because the job was cancelled. */
    cancelled: z.number().int().min(0).optional(),
    /** Distributed jobs only. */
    chunks: z.number().int().min(0).optional(),
    failedChunks: z.number().int().min(0).optional(),
  }),
  errorsByCode: z.record(z.string(), z.number().int().min(1)),
  /** Set when the run changed nothing, e.g. an incremental run that found nothing new. */
  message: z.string().optional(),
  timing: z.object({
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    /** Model resolution and engine start-up (local runs). */
    loadSeconds: z.number().min(0).optional(),
    /** Labelling time, from the first image read to the last output written. */
    seconds: z.number().min(0),
    imagesPerSecond: z.number().min(0),
  }),
  provenance: z.object({
    model: modelInfoSchema,
    engines: z.array(summaryEngineSchema),
    params: detectParamsSchema,
    detqVersion: z.string(),
    node: z.string(),
  }),
  files: z.array(z.string()),
});
export type RunSummary = z.infer<typeof runSummarySchema>;
