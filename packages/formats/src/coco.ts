import type { ImageRecord } from '@detq/core';

/**
 * COCO category ids. 'contiguous' (default): category_id = class_id + 1, so ids start at 1 as COCO
 * tools expect. 'coco91': the original COCO ids (1..90 with gaps) for models trained on the 80 COCO classes.
 */
export type CocoIdMap = 'contiguous' | 'coco91';

// The 80 COCO classes' original category ids, in YOLO class order.
export const COCO91_IDS = [
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
  35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
  65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
];

export function categoryId(classId: number, map: CocoIdMap): number {
  if (map === 'coco91') {
    const id = COCO91_IDS[classId];
    if (id === undefined) throw new Error(`class ${classId} has no COCO-91 id (the coco91 map covers 80 classes)`);
    return id;
  }
  return classId + 1;
}

/**
 * Renders a COCO detection JSON as text chunks, in bounded memory: the records are read twice
 * (images, then annotations) instead of being held.
 */
export async function* renderCoco(
  records: () => AsyncIterable<ImageRecord>,
  names: readonly string[],
  map: CocoIdMap = 'contiguous',
): AsyncGenerator<string> {
  const categories = names.map((name, i) => ({ id: categoryId(i, map), name, supercategory: 'object' }));
  yield `{"info":{"description":"detq detections","date_created":${JSON.stringify(new Date().toISOString())}},\n"images":[`;
  let id = 0;
  for await (const r of records()) {
    if (r.error) continue;
    yield `${id ? ',' : ''}\n${JSON.stringify({ id: ++id, file_name: r.key, width: r.width, height: r.height })}`;
  }
  yield '\n],\n"annotations":[';
  let imageId = 0;
  let annId = 0;
  for await (const r of records()) {
    if (r.error) continue;
    imageId++;
    for (const d of r.detections) {
      const [x1, y1, x2, y2] = d.box;
      const w = round2(x2 - x1);
      const h = round2(y2 - y1);
      const ann = { id: ++annId, image_id: imageId, category_id: categoryId(d.class_id, map), bbox: [x1, y1, w, h], area: round2(w * h), iscrowd: 0, score: d.confidence };
      yield `${annId > 1 ? ',' : ''}\n${JSON.stringify(ann)}`;
    }
  }
  yield `\n],\n"categories":${JSON.stringify(categories)}}\n`;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
