import type { ImageRecord } from '@detq/core';

/** One YOLO label line per detection: `class cx cy w h [conf]`, normalised to 0..1 with 6 decimals. */
export function renderYoloTxt(r: ImageRecord, saveConf: boolean): string {
  return r.detections
    .map((d) => {
      const [x1, y1, x2, y2] = d.box;
      const f = (v: number) => v.toFixed(6);
      const cols = [String(d.class_id), f((x1 + x2) / 2 / r.width), f((y1 + y2) / 2 / r.height), f((x2 - x1) / r.width), f((y2 - y1) / r.height)];
      if (saveConf) cols.push(d.confidence.toFixed(5));
      return `${cols.join(' ')}\n`;
    })
    .join('');
}

export interface YoloBox {
  classId: number;
  /** Pixel xyxy. */
  box: [number, number, number, number];
  confidence?: number;
}

/** Parses a YOLO label file back to pixel boxes (also used by `detq eval` for ground truth). */
export function parseYoloTxt(text: string, width: number, height: number): YoloBox[] {
  const out: YoloBox[] = [];
  for (const line of text.split(/\r?\n/)) {
    const cols = line.trim().split(/\s+/).map(Number);
    if (cols.length < 5 || cols.some(Number.isNaN)) continue;
    const [c, cx, cy, w, h, conf] = cols as [number, number, number, number, number, number?];
    const box: YoloBox = {
      classId: c,
      box: [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height],
    };
    if (conf !== undefined) box.confidence = conf;
    out.push(box);
  }
  return out;
}

/** The label file path of a key: its extension replaced by .txt. */
export function yoloLabelPath(key: string): string {
  return `${key.replace(/^([a-z0-9]+:)?\/+/i, '').replace(/\.[^./]+$/, '')}.txt`;
}
