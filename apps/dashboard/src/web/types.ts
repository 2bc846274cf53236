import type { JobSpec, JobStatus } from '@detq/core/job-spec';
import type { Detection } from '@detq/core/schemas';

/** Shapes of the API answers the dashboard reads (the API's own types live server-side). */
export interface JobView {
  id: string;
  status: JobStatus;
  counts: { total: number; done: number; failed: number };
  progress: number | null;
  imagesPerSecond: number;
  eta: number | null;
  output: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
  owner?: string;
  model?: string;
}

export interface Summary {
  counts: { total: number; labelled: number; failed: number; detections: number; chunks: number; failedChunks: number };
  errorsByCode: Record<string, number>;
  durationSeconds: number;
  imagesPerSecond: number;
  files: string[];
  provenance: {
    model?: { name: string; sha256: string; engine: string; imgsz: [number, number] };
    engines: { kind: string; runtimeVersion: string; device: string; precision: string }[];
    params: Record<string, unknown>;
    versions: Record<string, string>;
  };
}

export interface JobDetail {
  job: JobView;
  spec: Pick<JobSpec, 'input' | 'output' | 'model' | 'params' | 'chunkSize' | 'priority' | 'incremental'>;
  summary: Summary | null;
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

export interface WorkerView {
  id: string;
  frames: number;
  batches: number;
  fill: number;
  at: number;
  model?: string;
  engine?: string;
  device?: string;
  activeChunks?: number;
  imagesPerSecond?: number;
}

export interface ScheduleView {
  id: string;
  cron: string;
  tz?: string;
  next?: string;
}
