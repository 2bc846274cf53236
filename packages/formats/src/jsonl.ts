import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { imageRecordSchema, type ImageRecord } from '@detq/core';

export function recordLine(r: ImageRecord): string {
  return `${JSON.stringify(r)}\n`;
}

/** Streams and validates the records of a detections.jsonl file. */
export async function* readJsonl(path: string): AsyncGenerator<ImageRecord> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line.trim()) continue;
    const parsed = imageRecordSchema.safeParse(JSON.parse(line));
    if (!parsed.success) throw new Error(`${path}:${n}: not a detq record: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
    yield parsed.data;
  }
}
