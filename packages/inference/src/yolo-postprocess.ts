import type { DetectParams, Letterbox } from '@detq/core';
import type { FrameDetections } from './engine';

/** Ultralytics' cap on candidates before NMS. */
export const MAX_NMS = 30_000;
export const ROW = 6;

/**
 * Decodes one image's raw YOLO output and runs NMS exactly like Ultralytics' non_max_suppression:
 * `out` is [4 + numClasses, anchors] (cx, cy, w, h in input pixels, then sigmoided class scores),
 * candidates are scores strictly above conf, greedy class-aware NMS (across classes with agnosticNms)
 * suppresses IoU > iou, at most maxDet survive. Boxes are then mapped back through the letterbox
 * and clipped to the source image. The CUDA kernel mirrors this function.
 */
export function postprocess(
  out: Float32Array,
  offset: number,
  numClasses: number,
  anchors: number,
  params: DetectParams,
  lb: Letterbox,
): FrameDetections {
  if (!params.multiLabel) {
    // Best class per anchor, read class row by class row: the output is class-major, so this walks memory
    // in order (anchor by anchor strides 4 x anchors bytes per class, several times slower). A later class
    // must score strictly higher, so ties keep the lowest class index, as torch's max does.
    const best = new Float32Array(anchors);
    const bestS = out.slice(offset + 4 * anchors, offset + 5 * anchors);
    for (let c = 1; c < numClasses; c++) {
      const row = offset + (4 + c) * anchors;
      for (let a = 0; a < anchors; a++) {
        const s = out[row + a]!;
        if (s > bestS[a]!) {
          bestS[a] = s;
          best[a] = c;
        }
      }
    }
    return suppress(out, offset, anchors, bestClassCandidates(bestS, 0, best, 0, anchors, params), params, lb);
  }
  const conf = threshold(params);
  const wanted = params.classes ? new Set(params.classes) : undefined;
  const cand: Candidates = { anchor: [], cls: [], score: [] };
  for (let a = 0; a < anchors; a++)
    for (let c = 0; c < numClasses; c++) {
      const s = out[offset + (4 + c) * anchors + a]!;
      if (s > conf && (!wanted || wanted.has(c))) {
        cand.anchor.push(a);
        cand.cls.push(c);
        cand.score.push(s);
      }
    }
  return suppress(out, offset, anchors, cand, params, lb);
}

/**
 * `postprocess` for the best-class output detq adds to ONNX models (onnx-graph-edits.ts): `out` is
 * [6, anchors], the four box rows, then each anchor's best class score and that class (the lowest on
 * ties, as torch's max and ONNX's ArgMax both pick). The same detections as `postprocess` of the full
 * output without multiLabel, from 6 rows instead of 4 + numClasses.
 */
export function postprocessBestClass(out: Float32Array, offset: number, anchors: number, params: DetectParams, lb: Letterbox): FrameDetections {
  return suppress(out, offset, anchors, bestClassCandidates(out, offset + 4 * anchors, out, offset + 5 * anchors, anchors, params), params, lb);
}

/** Candidates as (anchor, class, score) triples, in anchor order. */
interface Candidates {
  anchor: number[];
  cls: number[];
  score: number[];
}

// Scores are float32 and torch compares them with the threshold in float32 too.
const threshold = (params: DetectParams) => Math.fround(params.conf);

/** The anchors whose best class (score at scores[s + a], class at classes[c + a]) passes conf and the class filter. */
function bestClassCandidates(scores: Float32Array, s: number, classes: Float32Array, c: number, anchors: number, params: DetectParams): Candidates {
  const conf = threshold(params);
  const wanted = params.classes ? new Set(params.classes) : undefined;
  const cand: Candidates = { anchor: [], cls: [], score: [] };
  for (let a = 0; a < anchors; a++) {
    const score = scores[s + a]!;
    if (score > conf && (!wanted || wanted.has(classes[c + a]!))) {
      cand.anchor.push(a);
      cand.cls.push(classes[c + a]!);
      cand.score.push(score);
    }
  }
  return cand;
}

/**
 * Greedy NMS of the candidates (anchor, class, score, in anchor order) over the box rows of `out`, then
 * the kept boxes mapped back through the letterbox.
 */
function suppress(
  out: Float32Array,
  offset: number,
  anchors: number,
  { anchor: candA, cls: candC, score: candS }: Candidates,
  params: DetectParams,
  lb: Letterbox,
): FrameDetections {
  const order = Array.from(candS.keys()).sort((i, j) => candS[j]! - candS[i]! || i - j);
  if (order.length > MAX_NMS) order.length = MAX_NMS;

  // Greedy NMS over the score-sorted candidates. Class-offset boxes of different classes never overlap, so
  // a candidate is only compared with the kept boxes of its own class: the same result as Ultralytics'
  // offset trick without its O(n^2) cost at low confidence thresholds.
  const keptByClass = new Map<number, number[]>();
  const kept: number[] = [];
  const box = (i: number) => {
    const a = candA[i]!;
    const cx = out[offset + a]!;
    const cy = out[offset + anchors + a]!;
    const hw = out[offset + 2 * anchors + a]! / 2;
    const hh = out[offset + 3 * anchors + a]! / 2;
    return [cx - hw, cy - hh, cx + hw, cy + hh] as const;
  };
  const boxes: (readonly [number, number, number, number])[] = [];
  for (const i of order) {
    if (kept.length >= params.maxDet) break;
    const group = params.agnosticNms ? -1 : candC[i]!;
    const b = box(i);
    const area = (b[2] - b[0]) * (b[3] - b[1]);
    let list = keptByClass.get(group);
    let suppressed = false;
    for (const k of list ?? []) {
      const o = boxes[k]!;
      const iw = Math.min(b[2], o[2]) - Math.max(b[0], o[0]);
      if (iw <= 0) continue;
      const ih = Math.min(b[3], o[3]) - Math.max(b[1], o[1]);
      if (ih <= 0) continue;
      const inter = iw * ih;
      if (inter / (area + (o[2] - o[0]) * (o[3] - o[1]) - inter) > params.iou) {
        suppressed = true;
        break;
      }
    }
    if (suppressed) continue;
    if (!list) keptByClass.set(group, (list = []));
    list.push(boxes.length);
    boxes.push(b);
    kept.push(i);
  }

  const rows = new Float32Array(kept.length * ROW);
  kept.forEach((i, n) => {
    const [x1, y1, x2, y2] = boxes[n]!;
    const r = n * ROW;
    rows[r] = clamp((x1 - lb.left) / lb.gain, lb.srcWidth);
    rows[r + 1] = clamp((y1 - lb.top) / lb.gain, lb.srcHeight);
    rows[r + 2] = clamp((x2 - lb.left) / lb.gain, lb.srcWidth);
    rows[r + 3] = clamp((y2 - lb.top) / lb.gain, lb.srcHeight);
    rows[r + 4] = candS[i]!;
    rows[r + 5] = candC[i]!;
  });
  const count = kept.length;
  return { rows: rows.subarray(0, count * ROW), count };
}

function clamp(v: number, hi: number): number {
  return v < 0 ? 0 : v > hi ? hi : v;
}

/**
 * One image of an end-to-end output (`[N, 6]` rows of x1, y1, x2, y2, score, class in input pixels,
 * boxes already selected by the graph): keeps rows scoring above conf (and in the class filter), at
 * most maxDet in score order, mapped back through the letterbox like `postprocess`. No NMS: the
 * model did it. native/src/core/output_layout.cc mirrors this function for the GPU engines.
 */
export function decodeEndToEnd(out: Float32Array, offset: number, detections: number, params: DetectParams, lb: Letterbox): FrameDetections {
  const conf = threshold(params);
  const wanted = params.classes ? new Set(params.classes) : undefined;
  const live: number[] = [];
  for (let i = 0; i < detections; i++) {
    const r = offset + i * ROW;
    if (out[r + 4]! > conf && (!wanted || wanted.has(Math.round(out[r + 5]!)))) live.push(r);
  }
  // Stable: equal scores keep the model's order.
  live.sort((a, b) => out[b + 4]! - out[a + 4]! || a - b);
  if (live.length > params.maxDet) live.length = params.maxDet;
  const rows = new Float32Array(live.length * ROW);
  live.forEach((r, n) => {
    const o = n * ROW;
    rows[o] = clamp((out[r]! - lb.left) / lb.gain, lb.srcWidth);
    rows[o + 1] = clamp((out[r + 1]! - lb.top) / lb.gain, lb.srcHeight);
    rows[o + 2] = clamp((out[r + 2]! - lb.left) / lb.gain, lb.srcWidth);
    rows[o + 3] = clamp((out[r + 3]! - lb.top) / lb.gain, lb.srcHeight);
    rows[o + 4] = out[r + 4]!;
    rows[o + 5] = Math.round(out[r + 5]!);
  });
  return { rows, count: live.length };
}
