import type { JobStatus } from '@detq/core';
import type { WorkerStats } from '@detq/queue';

export interface MetricsInput {
  counts: Record<JobStatus, number>;
  imagesPerSecond: number;
  workers: Record<string, WorkerStats>;
  errors: Record<string, number>;
  depth: Record<string, number>;
  queue: string;
}

const label = (v: string) => v.replace(/["\\\n]/g, '\\$&');

/** Prometheus text exposition of the API's view of the deployment. */
export function renderMetrics(m: MetricsInput): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('detq_jobs', 'gauge', 'Jobs by status (most recent 1000).', Object.entries(m.counts).map(([s, n]) => [`{status="${s}"}`, n]));
  metric('detq_images_per_second', 'gauge', 'Images per second over running jobs.', [['', Number(m.imagesPerSecond.toFixed(3))]]);
  const workers = Object.entries(m.workers);
  metric('detq_worker_frames_total', 'counter', 'Frames inferred by each worker.', workers.map(([id, s]) => [`{worker="${label(id)}"}`, s.frames]));
  metric('detq_worker_batches_total', 'counter', 'Engine batches run by each worker.', workers.map(([id, s]) => [`{worker="${label(id)}"}`, s.batches]));
  metric('detq_batch_fill', 'gauge', 'Mean batch fill (0..1) of each worker.', workers.map(([id, s]) => [`{worker="${label(id)}"}`, Number(s.fill.toFixed(4))]));
  metric('detq_queue_depth', 'gauge', 'Chunk jobs by BullMQ state.', Object.entries(m.depth).map(([s, n]) => [`{queue="${m.queue}",state="${s}"}`, n]));
  metric('detq_image_errors_total', 'counter', 'Per-image errors by code.', Object.entries(m.errors).map(([c, n]) => [`{code="${label(c)}"}`, n]));
  return `${lines.join('\n')}\n`;
}
