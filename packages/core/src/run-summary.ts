import { z } from 'zod';
import { detectParamsSchema, modelInfoSchema } from './schemas';
import { DETQ_VERSION } from './version';

/**
 * The run summary (`summary.json`, `detq label --json`, the webhook body): one schema for local runs
 * and distributed jobs, so a consumer reads both the same way.
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

export interface RunSummaryParts {
  id?: string;
  cancelled?: boolean;
  input: string;
  output: string;
  counts: Omit<RunSummary['counts'], 'resumed'> & { resumed?: number };
  errorsByCode: Record<string, number>;
  message?: string;
  startedAt: number;
  finishedAt: number;
  loadSeconds?: number;
  model: RunSummary['provenance']['model'];
  engines: SummaryEngine[];
  params: RunSummary['provenance']['params'];
  files: string[];
}

/** The one summary builder of local and distributed runs: derives status, rates and versions. */
export function buildRunSummary(p: RunSummaryParts): RunSummary {
  const seconds = Math.max(0, (p.finishedAt - p.startedAt) / 1000);
  // Images labelled by this run over its wall time (failures, skips and resumed records excluded).
  const labelledNow = Math.max(0, p.counts.labelled - (p.counts.resumed ?? 0));
  const distinctEngines = [...new Map(p.engines.map((e) => [JSON.stringify(e), e])).values()];
  return runSummarySchema.parse({
    ...(p.id !== undefined && { id: p.id }),
    status: p.cancelled ? 'cancelled' : p.counts.failed > 0 ? 'completed_with_errors' : 'completed',
    input: p.input,
    output: p.output,
    counts: { ...p.counts, resumed: p.counts.resumed ?? 0 },
    errorsByCode: p.errorsByCode,
    ...(p.message && { message: p.message }),
    timing: {
      startedAt: new Date(p.startedAt).toISOString(),
      finishedAt: new Date(p.finishedAt).toISOString(),
      ...(p.loadSeconds !== undefined && { loadSeconds: Number(p.loadSeconds.toFixed(3)) }),
      seconds: Number(seconds.toFixed(3)),
      imagesPerSecond: seconds > 0 ? Number((labelledNow / seconds).toFixed(2)) : 0,
    },
    provenance: { model: p.model, engines: distinctEngines, params: p.params, detqVersion: DETQ_VERSION, node: process.version },
    files: p.files,
  });
}
