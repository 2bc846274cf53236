import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FatalError } from '@detq/core';
import { evaluate, OUTPUT_FILES, readJsonl } from '@detq/formats';

export function register(program: Command): void {
  program
    .command('eval')
    .description('COCO-style mAP of predictions against YOLO labels (computed as Ultralytics val does)')
    .requiredOption('--pred <path>', 'a `detq label` output folder or its detections.jsonl')
    .requiredOption('--labels <dir>', 'YOLO labels folder (<stem>.txt per image)')
    .option('--json', 'print the metrics as JSON')
    .action(async (o: { pred: string; labels: string; json?: boolean }) => {
      const info = await stat(o.pred).catch(() => undefined);
      if (!info) throw new FatalError('INPUT_NOT_FOUND', `--pred not found: ${o.pred}`);
      if (!(await stat(o.labels).catch(() => undefined))?.isDirectory())
        throw new FatalError('INPUT_NOT_FOUND', `--labels is not a folder: ${o.labels}`);
      const jsonl = info.isDirectory() ? join(o.pred, OUTPUT_FILES.jsonl) : o.pred;
      const m = await evaluate(readJsonl(jsonl), o.labels);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
        return;
      }
      const f = (v: number) => v.toFixed(3);
      const rows = [`${'class'.padEnd(16)} ${'inst'.padStart(6)} ${'P'.padStart(6)} ${'R'.padStart(6)} ${'mAP50'.padStart(6)} ${'mAP50-95'.padStart(8)}`];
      rows.push(`${'all'.padEnd(16)} ${String(m.instances).padStart(6)} ${f(m.precision).padStart(6)} ${f(m.recall).padStart(6)} ${f(m.map50).padStart(6)} ${f(m.map5095).padStart(8)}`);
      for (const c of m.perClass)
        rows.push(`${c.name.slice(0, 16).padEnd(16)} ${String(c.instances).padStart(6)} ${f(c.precision).padStart(6)} ${f(c.recall).padStart(6)} ${f(c.ap50).padStart(6)} ${f(c.ap5095).padStart(8)}`);
      process.stdout.write(`${rows.join('\n')}\n`);
    });
}
