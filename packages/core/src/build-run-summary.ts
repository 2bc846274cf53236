import { runSummarySchema, type RunSummary, type SummaryEngine } from './run-summary';
import { DETQ_VERSION } from './version';

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
