import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectParamsSchema, sha256File, type DetectParams, type EngineKind, type ImageRecord, type ParityFigures } from '@detq/core';
import { evaluate, OUTPUT_FILES, readJsonl } from '@detq/formats';
import { runLocal } from './local-run';

/**
 * The parity gate: an engine (TensorRT, torch, or any other) labels a golden set of images, and so
 * does a reference ONNX model on the CPU path (onnxruntime-cpu); the engine passes when it finds at
 * least `minMatchedFraction` of the reference's boxes (same class, IoU >= `minIou`) and, with YOLO
 * labels, its mAP50-95 is within `maxMapDrift` of the reference's. `detq verify` and
 * `detq build-engine --verify` both run this one function.
 */
export const PARITY_THRESHOLDS = { minMatchedFraction: 0.97, minIou: 0.9, maxMapDrift: 0.01 } as const;

export interface ParityGateOptions {
  engine: EngineKind;
  /** The model file the engine runs (.engine, .torchscript, .onnx). */
  model: string;
  half?: boolean;
  /** The reference ONNX model, run on onnxruntime-cpu. */
  reference: string;
  images: string;
  labels?: string;
  batch?: number;
  threads?: number;
  notice?: (line: string) => void;
}

type Box = readonly [number, number, number, number];
function iou(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Reference boxes that the candidate found too: per image, each reference box greedily takes the
 * unused candidate box of its class with the highest IoU >= minIou. Images are paired by key; an
 * image the candidate lacks matches nothing.
 */
export function matchBoxes(reference: readonly ImageRecord[], candidate: readonly ImageRecord[], minIou: number): { matched: number; total: number } {
  const byKey = new Map(candidate.map((r) => [r.key, r]));
  let matched = 0;
  let total = 0;
  for (const ref of reference) {
    const cand = byKey.get(ref.key)?.detections ?? [];
    const used = new Set<number>();
    for (const d of ref.detections) {
      total++;
      let best = -1;
      let bestIou = minIou;
      cand.forEach((e, i) => {
        if (used.has(i) || e.class_id !== d.class_id) return;
        const v = iou(d.box, e.box);
        if (v >= bestIou) {
          bestIou = v;
          best = i;
        }
      });
      if (best >= 0) {
        used.add(best);
        matched++;
      }
    }
  }
  return { matched, total };
}

async function collect(records: AsyncIterable<ImageRecord>): Promise<ImageRecord[]> {
  const all: ImageRecord[] = [];
  for await (const r of records) all.push(r);
  return all;
}

/** Runs the gate; the figures say whether the engine passed and why not. */
export async function runParityGate(o: ParityGateOptions): Promise<ParityFigures> {
  const tmp = await mkdtemp(join(tmpdir(), 'detq-parity-'));
  try {
    const label = async (side: 'engine' | 'reference', params: Partial<DetectParams>, tag: string) => {
      const out = join(tmp, `${side}-${tag}`);
      await runLocal(
        {
          input: o.images,
          out,
          ...(side === 'engine' ? { model: o.model, engine: o.engine, ...(o.half !== undefined && { half: o.half }) } : { model: o.reference, engine: 'onnxruntime-cpu' as const }),
          params: detectParamsSchema.parse(params),
          batch: o.batch ?? 8,
          ...(o.threads !== undefined && { threads: o.threads }),
          formats: ['jsonl'],
          previews: 0,
        },
        o.notice ? { notice: o.notice } : {},
      );
      return join(out, OUTPUT_FILES.jsonl);
    };
    // Boxes at the default thresholds, as users label.
    const candidate = await collect(readJsonl(await label('engine', {}, 'default')));
    const reference = await collect(readJsonl(await label('reference', {}, 'default')));
    const { matched, total } = matchBoxes(reference, candidate, PARITY_THRESHOLDS.minIou);
    const matchedFraction = total ? matched / total : 1;
    const reasons: string[] = [];
    if (matchedFraction < PARITY_THRESHOLDS.minMatchedFraction)
      reasons.push(
        `${matched} of ${total} reference boxes matched at IoU >= ${PARITY_THRESHOLDS.minIou} (${(100 * matchedFraction).toFixed(2)} %, ` +
          `at least ${100 * PARITY_THRESHOLDS.minMatchedFraction} % needed)`,
      );
    let maps: Pick<ParityFigures, 'map5095' | 'referenceMap5095' | 'maxMapDrift'> = {};
    if (o.labels) {
      // mAP as Ultralytics val measures it: every box above conf 0.001, one per class.
      const val = { conf: 0.001, multiLabel: true };
      const mine = await evaluate(readJsonl(await label('engine', val, 'val')), o.labels);
      const theirs = await evaluate(readJsonl(await label('reference', val, 'val')), o.labels);
      maps = { map5095: mine.map5095, referenceMap5095: theirs.map5095, maxMapDrift: PARITY_THRESHOLDS.maxMapDrift };
      const drift = Math.abs(mine.map5095 - theirs.map5095);
      if (drift > PARITY_THRESHOLDS.maxMapDrift)
        reasons.push(`mAP50-95 ${mine.map5095.toFixed(4)} vs reference ${theirs.map5095.toFixed(4)}: drift ${drift.toFixed(4)} > ${PARITY_THRESHOLDS.maxMapDrift}`);
    }
    return {
      passed: reasons.length === 0,
      images: reference.length,
      referenceBoxes: total,
      matchedBoxes: matched,
      matchedFraction,
      minMatchedFraction: PARITY_THRESHOLDS.minMatchedFraction,
      minIou: PARITY_THRESHOLDS.minIou,
      ...maps,
      reference: o.reference,
      referenceSha256: await sha256File(o.reference),
      checkedAt: new Date().toISOString(),
      reasons,
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** One line for people: the figures and the verdict. */
export function describeParity(f: ParityFigures): string {
  const boxes = `${f.matchedBoxes}/${f.referenceBoxes} reference boxes matched at IoU >= ${f.minIou} (${(100 * f.matchedFraction).toFixed(2)} %)`;
  const map = f.map5095 !== undefined && f.referenceMap5095 !== undefined ? `, mAP50-95 ${f.map5095.toFixed(4)} vs ${f.referenceMap5095.toFixed(4)}` : '';
  return `parity ${f.passed ? 'passed' : 'REFUSED'} on ${f.images} images: ${boxes}${map}${f.reasons.length ? ` (${f.reasons.join('; ')})` : ''}`;
}
