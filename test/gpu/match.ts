import type { ImageRecord } from '@detq/core';

type Box = readonly [number, number, number, number];
function iou(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/** Share of CPU boxes with a same-class GPU box at IoU >= 0.9 (each GPU box matched once). */
export function matchedShare(cpu: ImageRecord[], gpu: ImageRecord[]): { matched: number; total: number } {
  const byKey = new Map(gpu.map((r) => [r.key, r]));
  let matched = 0;
  let total = 0;
  for (const c of cpu) {
    const g = byKey.get(c.key);
    const used = new Set<number>();
    for (const d of c.detections) {
      total++;
      let best = -1;
      let bestIou = 0.9;
      g?.detections.forEach((e, i) => {
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
