import { DetqError, type DetectParams, type ImageRecord, type ModelInfo } from '@detq/core';
import { ROW, type FrameDetections } from '@detq/inference';

const round = (v: number, digits: number) => Number(v.toFixed(digits));

/** Builds the canonical record of a labelled image. Boxes keep 2 decimals, scores 5. */
export function toRecord(
  key: string,
  width: number,
  height: number,
  dets: FrameDetections,
  names: readonly string[],
  model: ModelInfo,
  params: DetectParams,
): ImageRecord {
  const detections: ImageRecord['detections'] = [];
  for (let i = 0; i < dets.count; i++) {
    const r = dets.rows.subarray(i * ROW, i * ROW + ROW);
    const cls = r[5]!;
    detections.push({
      box: [round(r[0]!, 2), round(r[1]!, 2), round(r[2]!, 2), round(r[3]!, 2)],
      confidence: round(r[4]!, 5),
      class_id: cls,
      class_name: names[cls] ?? String(cls),
    });
  }
  return { key, width, height, detections, model, params };
}

/** The record of an image that could not be labelled. */
export function errorRecord(key: string, err: unknown, model: ModelInfo, params: DetectParams): ImageRecord {
  const code = err instanceof DetqError ? err.code : 'INFERENCE_FAILED';
  const message = err instanceof Error ? err.message : String(err);
  return { key, width: 0, height: 0, detections: [], error: { code, message }, model, params };
}
