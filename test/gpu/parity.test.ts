import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { detectParamsSchema, type DetectParams, type ImageRecord } from '@detq/core';
import { evaluate, OUTPUT_FILES, readJsonl } from '@detq/formats';
import { matchBoxes, runLocal } from '@detq/pipeline';
import { COCO_IMAGES, COCO_LABELS, CPU_REFERENCE, TORCHSCRIPT } from './gpu-fixtures';

// The torch engine (FP32 and FP16) against onnxruntime-cpu on coco128. The CPU outputs were made on the
// dev machine (test/gpu/make-cpu-reference.sh) because ONNX Runtime does not travel to the GPU machine.

// DETQ_GPU_KEEP_DIR keeps each run's labels for a closer look (the device script returns them).
async function label(half: boolean, params: Partial<DetectParams>, name: string): Promise<ImageRecord[]> {
  const keep = process.env.DETQ_GPU_KEEP_DIR;
  const out = keep ? join(keep, name) : await mkdtemp(join(tmpdir(), 'detq-gpu-'));
  try {
    await runLocal({ input: COCO_IMAGES, out, model: TORCHSCRIPT, engine: 'torch', half, params: detectParamsSchema.parse(params), batch: 16, formats: ['jsonl'], previews: 0 });
    return await collect(readJsonl(join(out, OUTPUT_FILES.jsonl)));
  } finally {
    if (!keep) await rm(out, { recursive: true, force: true });
  }
}

async function collect(records: AsyncIterable<ImageRecord>): Promise<ImageRecord[]> {
  const all: ImageRecord[] = [];
  for await (const r of records) all.push(r);
  return all;
}

describe.each([
  ['fp32', false],
  ['fp16', true],
])('torch %s on coco128', (_, half) => {
  test('matches >= 98% of the onnxruntime-cpu boxes at IoU >= 0.9 with the same class', async () => {
    const cpu = await collect(readJsonl(join(CPU_REFERENCE, 'cpu-conf025', OUTPUT_FILES.jsonl)));
    const gpu = await label(half, {}, `torch-${half ? 'fp16' : 'fp32'}-conf025`);
    expect(gpu.length).toBe(cpu.length);
    const { matched, total } = matchBoxes(cpu, gpu, 0.9);
    console.log(`torch ${half ? 'fp16' : 'fp32'}: ${matched}/${total} CPU boxes matched (${((100 * matched) / total).toFixed(2)}%)`);
    expect(total).toBeGreaterThan(500);
    expect(matched / total).toBeGreaterThanOrEqual(0.98);
  });

  test('detq eval mAP50-95 within 0.005 of the CPU figure', async () => {
    const cpu = JSON.parse(await readFile(join(CPU_REFERENCE, 'cpu-eval.json'), 'utf8')) as { map5095: number };
    const gpu = await label(half, { conf: 0.001, multiLabel: true }, `torch-${half ? 'fp16' : 'fp32'}-val`);
    async function* records() {
      yield* gpu;
    }
    const m = await evaluate(records(), COCO_LABELS);
    console.log(`torch ${half ? 'fp16' : 'fp32'}: mAP50-95 ${m.map5095.toFixed(4)} (CPU ${cpu.map5095.toFixed(4)}), mAP50 ${m.map50.toFixed(4)}`);
    expect(Math.abs(m.map5095 - cpu.map5095)).toBeLessThanOrEqual(0.005);
  });
});
