import type { JobView, WorkerStats } from '@detq/core/api-schemas';
import type { RunSummary } from '@detq/core/run-summary';
import type { JobSpec } from '@detq/core/job-spec';
import type { Detection } from '@detq/core/schemas';

/** Shapes of the API answers the dashboard reads: the API's own schemas where it has them. */
export type { JobView, ScheduleView } from '@detq/core/api-schemas';
export type { RunSummary as Summary } from '@detq/core/run-summary';
export interface JobDetail {
  job: JobView;
  spec: Pick<JobSpec, 'input' | 'output' | 'model' | 'params' | 'chunkSize' | 'priority' | 'incremental'>;
  summary: RunSummary | null;
}

export interface RecordView {
  key: string;
  width: number;
  height: number;
  detections: Detection[];
  error?: { code: string; message: string };
}

export interface RecordsPage {
  total: number;
  offset: number;
  records: RecordView[];
  classes: Record<string, number>;
  errors: Record<string, number>;
  written: number;
}

export type WorkerView = WorkerStats & { id: string };

