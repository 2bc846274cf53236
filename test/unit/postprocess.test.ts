import { describe, expect, it } from 'vitest';
import { computeLetterbox, detectParamsSchema } from '@detq/core';
import { postprocess, ROW } from '@detq/inference';

const NC = 3;
/** Builds a raw [4+NC, anchors] output from (cx, cy, w, h, scores[]) anchors. */
function raw(anchors: [number, number, number, number, number[]][]): Float32Array {
  const a = anchors.length;
  const out = new Float32Array((4 + NC) * a);
  anchors.forEach(([cx, cy, w, h, s], i) => {
    out[i] = cx;
    out[a + i] = cy;
    out[2 * a + i] = w;
    out[3 * a + i] = h;
    s.forEach((v, c) => (out[(4 + c) * a + i] = v));
  });
  return out;
}
const identity = computeLetterbox(640, 640, 640, 640);
const params = (p: object = {}) => detectParamsSchema.parse(p);
const rows = (d: { rows: Float32Array; count: number }) =>
  Array.from({ length: d.count }, (_, i) => Array.from(d.rows.subarray(i * ROW, i * ROW + ROW)).map((v) => Math.round(v * 1000) / 1000));

describe('postprocess (Ultralytics NMS semantics)', () => {
  const out = raw([
    [100, 100, 50, 50, [0.9, 0, 0]],
    [102, 100, 50, 50, [0.8, 0, 0]], // overlaps the first, same class: suppressed
    [102, 100, 50, 50, [0, 0.7, 0]], // same place, other class: kept unless agnostic
    [400, 400, 20, 20, [0.25, 0, 0.3]],
  ]);

  it('suppresses same-class overlaps only and sorts by score', () => {
    const d = postprocess(out, 0, NC, 4, params(), identity);
    expect(rows(d)).toEqual([
      [75, 75, 125, 125, 0.9, 0],
      [77, 75, 127, 125, 0.7, 1],
      [390, 390, 410, 410, 0.3, 2],
    ]);
  });

  it('keeps scores strictly above conf, filters classes, caps at maxDet', () => {
    expect(postprocess(out, 0, NC, 4, params({ conf: 0.3 }), identity).count).toBe(2);
    expect(rows(postprocess(out, 0, NC, 4, params({ classes: [1] }), identity))).toEqual([[77, 75, 127, 125, 0.7, 1]]);
    expect(postprocess(out, 0, NC, 4, params({ maxDet: 1 }), identity).count).toBe(1);
  });

  it('suppresses across classes with agnosticNms and emits every class over conf with multiLabel', () => {
    expect(postprocess(out, 0, NC, 4, params({ agnosticNms: true }), identity).count).toBe(2);
    const multi = rows(postprocess(out, 0, NC, 4, params({ multiLabel: true }), identity));
    expect(multi.map((r) => [r[4], r[5]])).toEqual([[0.9, 0], [0.7, 1], [0.3, 2]]);
    expect(rows(postprocess(out, 0, NC, 4, params({ multiLabel: true, conf: 0.2 }), identity)).map((r) => r[5])).toEqual([0, 1, 2, 0]);
  });

  it('maps boxes back through the letterbox and clips them to the image', () => {
    const lb = computeLetterbox(1280, 720, 640, 640); // gain 0.5, top pad 140
    const d = postprocess(raw([[10, 150, 40, 40, [0.9, 0, 0]]]), 0, NC, 1, params(), lb);
    expect(rows(d)).toEqual([[0, 0, 60, 60, 0.9, 0]]);
  });
});
