import type { Command } from 'commander';
import { FatalError } from '@detq/core';
import { parseSpec, readJson, withQueues } from '../queue-cli';
import { OutputBusyError } from '@detq/queue';

interface EnqueueFlags {
  input?: string;
  output?: string;
  formats?: string;
  conf?: string;
  iou?: string;
  model?: string;
  chunkSize?: string;
  priority?: string;
  idempotencyKey?: string;
  incremental?: boolean;
  json?: boolean;
}

const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

/** A spec from flags, for the common case; anything richer goes in a JSON file. */
function specFromFlags(f: EnqueueFlags): unknown {
  if (!f.input || !f.output) throw new FatalError('USAGE', 'give a spec file, or both --input and --output');
  return {
    input: { uri: f.input },
    output: { uri: f.output, ...(f.formats && { formats: f.formats.split(',') }) },
    ...(f.model && { model: { uri: f.model } }),
    params: { ...(f.conf && { conf: num(f.conf) }), ...(f.iou && { iou: num(f.iou) }) },
    ...(f.chunkSize && { chunkSize: num(f.chunkSize) }),
    ...(f.priority && { priority: num(f.priority) }),
    ...(f.idempotencyKey && { idempotencyKey: f.idempotencyKey }),
    ...(f.incremental && { incremental: true }),
  };
}

export function register(program: Command): void {
  program
    .command('enqueue')
    .description('Enqueue a distributed labelling job (Redis at $REDIS_URL, queues under $DETQ_QUEUE_PREFIX)')
    .argument('[spec]', 'JSON job spec file, or - for stdin')
    .option('--input <uri>', 's3://bucket/prefix/ to label')
    .option('--output <uri>', 's3://bucket/prefix/ for the results')
    .option('--formats <list>', 'jsonl,coco,yolo,labelstudio')
    .option('--conf <n>', 'confidence threshold')
    .option('--iou <n>', 'NMS IoU threshold')
    .option('--model <uri>', 's3:// URI of the model (default: the workers\' DETQ_MODEL)')
    .option('--chunk-size <n>', 'images per chunk job')
    .option('--priority <n>', '1 (highest) .. 1000')
    .option('--idempotency-key <key>', 'enqueueing the same key again returns the existing job')
    .option('--incremental', 'skip images already labelled with the same model and params')
    .option('--json', 'print the result as JSON')
    .action(async (file: string | undefined, f: EnqueueFlags) => {
      const spec = parseSpec(file ? await readJson(file) : specFromFlags(f));
      const res = await withQueues((_q, jobs) => jobs.enqueue(spec)).catch((err: unknown) => {
        throw err instanceof OutputBusyError ? new FatalError('USAGE', err.message) : err;
      });
      process.stdout.write(f.json ? `${JSON.stringify(res)}\n` : `${res.id}${res.existing ? ' (existing)' : ''}\n`);
    });
}
