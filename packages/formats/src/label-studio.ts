import type { ImageRecord } from '@detq/core';

/**
 * One Label Studio task with a prediction (pre-annotation): rectanglelabels in percent of the original
 * size. `from_name`/`to_name` match the default "Object Detection with Bounding Boxes" labelling config.
 */
export function labelStudioTask(r: ImageRecord, imageUri: string, modelVersion: string) {
  const result = r.detections.map((d, i) => {
    const [x1, y1, x2, y2] = d.box;
    return {
      id: `${i}`,
      type: 'rectanglelabels',
      from_name: 'label',
      to_name: 'image',
      original_width: r.width,
      original_height: r.height,
      image_rotation: 0,
      score: d.confidence,
      value: {
        x: (x1 / r.width) * 100,
        y: (y1 / r.height) * 100,
        width: ((x2 - x1) / r.width) * 100,
        height: ((y2 - y1) / r.height) * 100,
        rotation: 0,
        rectanglelabels: [d.class_name],
      },
    };
  });
  const score = result.length ? result.reduce((s, x) => s + x.score, 0) / result.length : 0;
  return { data: { image: imageUri }, meta: { key: r.key }, predictions: [{ model_version: modelVersion, score, result }] };
}

/** Renders a Label Studio import file (a JSON array of tasks) as text chunks. */
export async function* renderLabelStudio(
  records: AsyncIterable<ImageRecord>,
  imageUri: (key: string) => string,
): AsyncGenerator<string> {
  yield '[';
  let n = 0;
  for await (const r of records) {
    if (r.error) continue;
    yield `${n++ ? ',' : ''}\n${JSON.stringify(labelStudioTask(r, imageUri(r.key), `${r.model.name}@${r.model.sha256.slice(0, 12)}`))}`;
  }
  yield '\n]\n';
}
