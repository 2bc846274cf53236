import { s3UriSchema } from '@detq/core';

/** A manifest line that is not an image URI: `line` is 1-based. */
export class ManifestLineError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The image URIs of a manifest, with their line numbers: a .jsonl manifest has one `"s3://…"` or
 * `{"uri": "s3://…"}` a line; a .csv has the URI first (an optional `uri` header line is skipped).
 * Throws ManifestLineError at the first bad line. Used by the planner and by the API's enqueue check.
 */
export function* manifestUris(text: string, manifestUri: string): Generator<{ line: number; uri: string }> {
  const jsonl = /\.jsonl$/i.test(manifestUri);
  let n = 0;
  for (const raw of text.split(/\r?\n/)) {
    n++;
    const line = raw.trim();
    if (!line) continue;
    let value: unknown;
    try {
      value = jsonl ? JSON.parse(line) : line.split(',')[0]!.trim().replace(/^"|"$/g, '');
    } catch {
      throw new ManifestLineError(n, 'not JSON');
    }
    const image = typeof value === 'object' && value !== null ? (value as { uri?: unknown }).uri : value;
    if (!jsonl && n === 1 && image === 'uri') continue;
    const parsed = s3UriSchema.safeParse(image);
    if (!parsed.success) throw new ManifestLineError(n, parsed.error.issues[0]?.message ?? 'not an s3:// URI');
    yield { line: n, uri: parsed.data };
  }
}
