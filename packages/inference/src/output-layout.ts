import { FatalError } from '@detq/core';

/**
 * How a detection model's single output is laid out. Every engine (onnxruntime-cpu, torch, tensorrt)
 * decides it with the same rules (native/src/core/output_layout.cc mirrors `detectOutputLayout`):
 * - 'raw': the YOLO head `[batch, 4 + classes, anchors]` (cx, cy, w, h, then class scores); detq
 *   decodes it and runs NMS.
 * - 'end2end': boxes already selected in the graph (`nms=True` exports, YOLOv10/YOLO26 style)
 *   `[batch, N, 6]` = x1, y1, x2, y2, score, class in input pixels; detq only filters and maps back.
 */
export type OutputLayout =
  | { kind: 'raw'; numClasses: number; anchors: number }
  | { kind: 'end2end'; maxDetections: number };

/** What a model's metadata says about its output (Ultralytics writes `end2end` and `names`). */
export interface OutputLayoutHints {
  /** Ultralytics' `end2end` metadata flag, when present. */
  end2end?: boolean;
  /** Number of class names in the metadata, when present. */
  numClasses?: number;
}

/** Values per end-to-end detection: x1, y1, x2, y2, score, class. */
export const END2END_VALUES = 6;

/** Reads Ultralytics' `end2end` metadata value ('True' / 'False', Python's spelling), if there is one. */
export function end2endFlag(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  return v === 'true' ? true : v === 'false' ? false : undefined;
}

/**
 * Decides the layout of an output of shape `shape` (`[batch, a, b]`; symbolic dimensions as strings
 * or -1). Anything else is refused with a message naming the shape.
 */
export function detectOutputLayout(shape: readonly (number | string)[], hints: OutputLayoutHints = {}, model = 'the model'): OutputLayout {
  const text = `[${shape.join(', ')}]`;
  const refuse = (why: string) =>
    new FatalError('BAD_MODEL', `${model} has output ${text}: ${why}; detq decodes YOLO heads [batch, 4+classes, anchors] and end-to-end outputs [batch, N, 6]`);
  const dim = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : undefined);
  if (shape.length !== 3) throw refuse(`rank ${shape.length}, expected 3`);
  const rows = dim(shape[1]);
  const cols = dim(shape[2]);
  const end2end = hints.end2end ?? (cols === END2END_VALUES && rows !== END2END_VALUES);
  if (end2end) {
    if (cols !== END2END_VALUES) throw refuse(`its metadata says end2end but the last dimension is not ${END2END_VALUES}`);
    if (!rows) throw refuse('the number of detections is not fixed');
    return { kind: 'end2end', maxDetections: rows };
  }
  if (!rows || rows < 5) throw refuse('fewer than 5 rows (4 box values + at least one class)');
  if (hints.numClasses !== undefined && hints.numClasses > 0 && rows !== 4 + hints.numClasses)
    throw refuse(`its metadata names ${hints.numClasses} classes, so 4+${hints.numClasses} = ${4 + hints.numClasses} rows were expected`);
  return { kind: 'raw', numClasses: rows - 4, anchors: cols ?? 0 };
}
