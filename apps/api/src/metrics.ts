import { Counter, Gauge, Registry } from 'prom-client';
import { jobStatusSchema } from '@detq/core';
import { CHUNK_QUEUE, type DetqQueues } from '@detq/queue';

/**
 * The deployment's metrics on prom-client. Every value is read at scrape time from counters the job
 * model keeps on state changes (jobs by status, images by outcome, errors by code, per-worker batcher
 * stats, queue depth): a fixed handful of Redis commands per scrape, whatever the number of jobs.
 */
export function createMetricsRegistry(queues: DetqQueues): Registry {
  const registry = new Registry();
  const { metrics } = queues;
  new Gauge({
    name: 'detq_jobs',
    help: 'Jobs by status.',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await metrics.statusCounts();
      for (const s of jobStatusSchema.options) this.set({ status: s }, counts[s]);
    },
  });
  new Counter({
    name: 'detq_images_total',
    help: 'Images of ended jobs, by outcome (labelled or failed).',
    labelNames: ['outcome'],
    registers: [registry],
    async collect() {
      const images = await metrics.images();
      this.reset();
      this.inc({ outcome: 'labelled' }, images.labelled);
      this.inc({ outcome: 'failed' }, images.failed);
    },
  });
  new Counter({
    name: 'detq_image_errors_total',
    help: 'Per-image errors by code.',
    labelNames: ['code'],
    registers: [registry],
    async collect() {
      const errors = await metrics.errors();
      this.reset();
      for (const [code, n] of Object.entries(errors)) this.inc({ code }, n);
    },
  });
  const perWorker = (name: string, help: string, pick: (s: { frames: number; batches: number; fill: number }) => number, type: 'counter' | 'gauge') => {
    const collect = async function (this: Gauge | Counter) {
      const workers = await metrics.workers();
      this.reset();
      for (const [worker, s] of Object.entries(workers))
        if (this instanceof Gauge) this.set({ worker }, pick(s));
        else this.inc({ worker }, pick(s));
    };
    return type === 'gauge'
      ? new Gauge({ name, help, labelNames: ['worker'], registers: [registry], collect })
      : new Counter({ name, help, labelNames: ['worker'], registers: [registry], collect });
  };
  perWorker('detq_worker_frames_total', 'Frames inferred by each worker.', (s) => s.frames, 'counter');
  perWorker('detq_worker_batches_total', 'Engine batches run by each worker.', (s) => s.batches, 'counter');
  perWorker('detq_batch_fill', 'Mean batch fill (0..1) of each worker.', (s) => s.fill, 'gauge');
  new Gauge({
    name: 'detq_queue_depth',
    help: 'Chunk jobs by BullMQ state.',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      const depth = await queues.chunks.getJobCounts('waiting', 'prioritized', 'active', 'delayed');
      for (const [state, n] of Object.entries(depth)) this.set({ queue: CHUNK_QUEUE, state }, n);
    },
  });
  return registry;
}
