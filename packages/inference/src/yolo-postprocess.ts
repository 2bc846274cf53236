import type { DetectParams, Letterbox } from '@detq/core';
import type { FrameDetections } from './engine';

/** Ultralytics' constants: class offset for class-aware NMS, and the candidate cap before NMS. */
export const MAX_WH = 7680;
export const MAX_NMS = 30_000;
export const ROW = 6;

/**
 * Decodes one image's raw YOLO output and runs NMS exactly like Ultralytics' non_max_suppression:
 * `out` is [4 + numClasses, anchors] (cx, cy, w, h in input pixels, then sigmoided class scores),
 * candidates are scores strictly above conf, boxes are offset by class * 7680 unless agnostic, greedy
 * NMS suppresses IoU > iou, at most maxDet survive. Boxes are then mapped back through the letterbox
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
  const { conf, multiLabel } = params;
  const wanted = params.classes ? new Set(params.classes) : undefined;
  const score = (c: number, a: number) => out[offset + (4 + c) * anchors + a]!;

  // Candidates as (anchor, class, score) triples.
  const candA: number[] = [];
  const candC: number[] = [];
  const candS: number[] = [];
  for (let a = 0; a < anchors; a++) {
    if (multiLabel) {
      for (let c = 0; c < numClasses; c++) {
        const s = score(c, a);
        if (s > conf && (!wanted || wanted.has(c))) {
          candA.push(a);
          candC.push(c);
          candS.push(s);
        }
      }
    } else {
      let best = 0;
      let bestS = score(0, a);
      for (let c = 1; c < numClasses; c++) {
        const s = score(c, a);
        if (s > bestS) {
          bestS = s;
          best = c;
        }
      }
      if (bestS > conf && (!wanted || wanted.has(best))) {
        candA.push(a);
        candC.push(best);
        candS.push(bestS);
      }
    }
  }

  const order = Array.from(candS.keys()).sort((i, j) => candS[j]! - candS[i]! || i - j);
  if (order.length > MAX_NMS) order.length = MAX_NMS;

  const n = order.length;
  const x1 = new Float32Array(n);
  const y1 = new Float32Array(n);
  const x2 = new Float32Array(n);
  const y2 = new Float32Array(n);
  const area = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    const a = candA[i]!;
    const off = params.agnosticNms ? 0 : candC[i]! * MAX_WH;
    const cx = out[offset + a]!;
    const cy = out[offset + anchors + a]!;
    const hw = out[offset + 2 * anchors + a]! / 2;
    const hh = out[offset + 3 * anchors + a]! / 2;
    x1[k] = cx - hw + off;
    y1[k] = cy - hh + off;
    x2[k] = cx + hw + off;
    y2[k] = cy + hh + off;
    area[k] = (x2[k]! - x1[k]!) * (y2[k]! - y1[k]!);
  }

  const suppressed = new Uint8Array(n);
  const rows = new Float32Array(Math.min(n, params.maxDet) * ROW);
  let count = 0;
  for (let k = 0; k < n && count < params.maxDet; k++) {
    if (suppressed[k]) continue;
    const i = order[k]!;
    const off = params.agnosticNms ? 0 : candC[i]! * MAX_WH;
    const r = count * ROW;
    rows[r] = clamp((x1[k]! - off - lb.left) / lb.gain, lb.srcWidth);
    rows[r + 1] = clamp((y1[k]! - off - lb.top) / lb.gain, lb.srcHeight);
    rows[r + 2] = clamp((x2[k]! - off - lb.left) / lb.gain, lb.srcWidth);
    rows[r + 3] = clamp((y2[k]! - off - lb.top) / lb.gain, lb.srcHeight);
    rows[r + 4] = candS[i]!;
    rows[r + 5] = candC[i]!;
    count++;
    for (let m = k + 1; m < n; m++) {
      if (suppressed[m]) continue;
      const iw = Math.min(x2[k]!, x2[m]!) - Math.max(x1[k]!, x1[m]!);
      if (iw <= 0) continue;
      const ih = Math.min(y2[k]!, y2[m]!) - Math.max(y1[k]!, y1[m]!);
      if (ih <= 0) continue;
      const inter = iw * ih;
      if (inter / (area[k]! + area[m]! - inter) > params.iou) suppressed[m] = 1;
    }
  }
  return { rows: rows.subarray(0, count * ROW), count };
}

function clamp(v: number, hi: number): number {
  return v < 0 ? 0 : v > hi ? hi : v;
}
