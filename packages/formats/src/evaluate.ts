import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ImageRecord } from '@detq/core';
import { parseYoloTxt } from './yolo-txt';

/** COCO-style metrics computed the way Ultralytics' `val` computes them, so the figures compare directly. */
export interface EvalResult {
  images: number;
  instances: number;
  precision: number;
  recall: number;
  map50: number;
  map5095: number;
  perClass: { classId: number; name: string; instances: number; precision: number; recall: number; ap50: number; ap5095: number }[];
}

const IOU_THRESHOLDS = Array.from({ length: 10 }, (_, i) => 0.5 + 0.05 * i);
const T = IOU_THRESHOLDS.length;

type Xyxy = readonly [number, number, number, number];

function iou(a: Xyxy, b: Xyxy): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-7);
}

/**
 * Ultralytics' match_predictions: at each IoU threshold, every prediction keeps its best-IoU label of the
 * same class, then each label keeps the first (highest-confidence) prediction that chose it.
 */
function matchImage(preds: ImageRecord['detections'], labels: { classId: number; box: Xyxy }[]): Uint8Array {
  const correct = new Uint8Array(preds.length * T);
  if (!labels.length || !preds.length) return correct;
  const ious = preds.map((p) => labels.map((l) => (l.classId === p.class_id ? iou(l.box, p.box) : 0)));
  for (let t = 0; t < T; t++) {
    const thr = IOU_THRESHOLDS[t]!;
    const taken = new Set<number>();
    for (let d = 0; d < preds.length; d++) {
      let best = -1;
      let bestIou = -1;
      ious[d]!.forEach((v, l) => {
        if (v >= thr && v > bestIou) {
          bestIou = v;
          best = l;
        }
      });
      if (best >= 0 && !taken.has(best)) {
        taken.add(best);
        correct[d * T + t] = 1;
      }
    }
  }
  return correct;
}

/** numpy.interp: with repeated xp values the last one at or below x wins. */
function interp(x: number, xp: number[], fp: number[], left?: number): number {
  const last = xp.length - 1;
  if (x < xp[0]!) return left ?? fp[0]!;
  if (x >= xp[last]!) return fp[last]!;
  let lo = 0;
  let hi = last;
  // Invariant: xp[lo] <= x < xp[hi].
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xp[mid]! <= x) lo = mid;
    else hi = mid;
  }
  return fp[lo]! + ((x - xp[lo]!) * (fp[hi]! - fp[lo]!)) / (xp[hi]! - xp[lo]!);
}

/** Ultralytics' compute_ap: precision envelope, 101-point interpolation, trapezoidal integration. */
function computeAp(recall: number[], precision: number[]): number {
  const mrec = [0, ...recall, 1];
  const mpre = [1, ...precision, 0];
  for (let i = mpre.length - 2; i >= 0; i--) mpre[i] = Math.max(mpre[i]!, mpre[i + 1]!);
  let ap = 0;
  let prev = interp(0, mrec, mpre);
  for (let k = 1; k <= 100; k++) {
    const y = interp(k / 100, mrec, mpre);
    ap += ((y + prev) / 2) * 0.01;
    prev = y;
  }
  return ap;
}

function smooth(y: number[], f = 0.1): number[] {
  const nf = Math.round(y.length * f * 2) / 2 + 1;
  const n = Math.floor(nf);
  const half = Math.floor(n / 2);
  const padded = [...Array<number>(half).fill(y[0]!), ...y, ...Array<number>(half).fill(y[y.length - 1]!)];
  const out: number[] = [];
  for (let i = 0; i + n <= padded.length; i++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += padded[i + k]!;
    out.push(s / n);
  }
  return out;
}

/**
 * Evaluates prediction records against a YOLO labels folder (`<stem>.txt` per image; a missing file
 * means a background image). Only images with a record (and no error) are evaluated. Class names come
 * from `names`, else from the records' detections.
 */
export async function evaluate(records: AsyncIterable<ImageRecord>, labelsDir: string, names: readonly string[] = []): Promise<EvalResult> {
  const conf: number[] = [];
  const cls: number[] = [];
  const tp: Uint8Array[] = [];
  const targetCounts = new Map<number, number>();
  const seenNames: string[] = [];
  let images = 0;
  for await (const r of records) {
    if (r.error) continue;
    images++;
    const stem = basename(r.key).replace(/\.[^.]+$/, '');
    const text = await readFile(join(labelsDir, `${stem}.txt`), 'utf8').catch(() => '');
    const labels = parseYoloTxt(text, r.width, r.height);
    for (const l of labels) targetCounts.set(l.classId, (targetCounts.get(l.classId) ?? 0) + 1);
    const correct = matchImage(r.detections, labels);
    r.detections.forEach((d, i) => {
      seenNames[d.class_id] ??= d.class_name;
      conf.push(d.confidence);
      cls.push(d.class_id);
      tp.push(correct.subarray(i * T, i * T + T));
    });
  }

  const order = Array.from(conf.keys()).sort((a, b) => conf[b]! - conf[a]!);
  const classes = [...targetCounts.keys()].sort((a, b) => a - b);
  const grid = Array.from({ length: 1000 }, (_, i) => i / 999);
  const perClass: EvalResult['perClass'] = [];
  const pCurves: number[][] = [];
  const rCurves: number[][] = [];
  for (const c of classes) {
    const nl = targetCounts.get(c)!;
    const idx = order.filter((i) => cls[i] === c);
    const ap = new Array<number>(T).fill(0);
    let pCurve = new Array<number>(1000).fill(0);
    let rCurve = new Array<number>(1000).fill(0);
    if (idx.length) {
      const negConf = idx.map((i) => -conf[i]!);
      for (let t = 0; t < T; t++) {
        let tpc = 0;
        const recall: number[] = [];
        const precision: number[] = [];
        idx.forEach((i, k) => {
          tpc += tp[i]![t]!;
          recall.push(tpc / (nl + 1e-16));
          precision.push(tpc / (k + 1));
        });
        ap[t] = computeAp(recall, precision);
        if (t === 0) {
          rCurve = grid.map((x) => interp(-x, negConf, recall, 0));
          pCurve = grid.map((x) => interp(-x, negConf, precision, 1));
        }
      }
    }
    pCurves.push(pCurve);
    rCurves.push(rCurve);
    perClass.push({ classId: c, name: names[c] ?? seenNames[c] ?? String(c), instances: nl, precision: 0, recall: 0, ap50: ap[0]!, ap5095: ap.reduce((s, v) => s + v, 0) / T });
  }
  // Precision and recall at the confidence that maximises the class-mean F1 (smoothed), as Ultralytics reports.
  const f1Mean = grid.map((_, g) => {
    let s = 0;
    perClass.forEach((_, k) => {
      const p = pCurves[k]![g]!;
      const r = rCurves[k]![g]!;
      s += (2 * p * r) / (p + r + 1e-16);
    });
    return perClass.length ? s / perClass.length : 0;
  });
  const sm = smooth(f1Mean);
  const best = sm.indexOf(Math.max(...sm));
  perClass.forEach((pc, k) => {
    pc.precision = pCurves[k]![best]!;
    pc.recall = rCurves[k]![best]!;
  });
  const mean = (f: (x: EvalResult['perClass'][number]) => number) => (perClass.length ? perClass.reduce((s, x) => s + f(x), 0) / perClass.length : 0);
  return {
    images,
    instances: [...targetCounts.values()].reduce((s, v) => s + v, 0),
    precision: mean((x) => x.precision),
    recall: mean((x) => x.recall),
    map50: mean((x) => x.ap50),
    map5095: mean((x) => x.ap5095),
    perClass,
  };
}
