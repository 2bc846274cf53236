import { open, truncate } from 'node:fs/promises';
import { FatalError, type DetectParams, type ModelInfo } from '@detq/core';
import { readJsonl } from '@detq/formats';

/** What an interrupted run had already written: the keys to skip and the counts they carry. */
export interface ResumeState {
  keys: Set<string>;
  total: number;
  failed: number;
  detections: number;
  errorsByCode: Record<string, number>;
}

/**
 * `detq label --resume`: reads the records an earlier run appended to detections.jsonl. A crash can leave
 * a partial last line; it is cut off first (that image is labelled again). Every record must come from
 * the same model (sha256, input size) and params, or the results would mix two runs: that is an error.
 */
export async function readResumeState(jsonlPath: string, expected: { model: ModelInfo; params: DetectParams }): Promise<ResumeState> {
  const state: ResumeState = { keys: new Set(), total: 0, failed: 0, detections: 0, errorsByCode: {} };
  const size = await dropPartialLastLine(jsonlPath);
  if (size === undefined || size === 0) return state;
  const want = canonical(expected.params);
  let n = 0;
  for await (const r of readJsonl(jsonlPath)) {
    n++;
    if (r.model.sha256 !== expected.model.sha256 || r.model.imgsz.join('x') !== expected.model.imgsz.join('x'))
      throw new FatalError(
        'USAGE',
        `--resume: ${jsonlPath} line ${n} was labelled by ${r.model.name} (sha256 ${r.model.sha256.slice(0, 12)}, ${r.model.imgsz.join('x')}), ` +
          `this run uses ${expected.model.name} (sha256 ${expected.model.sha256.slice(0, 12)}, ${expected.model.imgsz.join('x')}): use another --out, or the same model`,
      );
    if (canonical(r.params) !== want)
      throw new FatalError('USAGE', `--resume: ${jsonlPath} line ${n} was labelled with params ${canonical(r.params)}, this run uses ${want}: use another --out, or the same flags`);
    if (state.keys.has(r.key)) continue;
    state.keys.add(r.key);
    state.total++;
    state.detections += r.detections.length;
    if (r.error) {
      state.failed++;
      state.errorsByCode[r.error.code] = (state.errorsByCode[r.error.code] ?? 0) + 1;
    }
  }
  return state;
}

function canonical(params: DetectParams): string {
  return JSON.stringify(Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/** Truncates the file after its last newline; returns its size, or undefined when it does not exist. */
async function dropPartialLastLine(path: string): Promise<number | undefined> {
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new FatalError('OUTPUT_FAILED', `--resume: cannot read ${path}: ${err.message}`, { cause: err });
  });
  if (!fh) return undefined;
  let end: number;
  try {
    const { size } = await fh.stat();
    end = 0;
    const buf = Buffer.alloc(64 * 1024);
    // Search backwards, a block at a time, for the last newline.
    for (let to = size; to > 0 && end === 0; ) {
      const from = Math.max(0, to - buf.length);
      const { bytesRead } = await fh.read(buf, 0, to - from, from);
      const nl = buf.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (nl >= 0) end = from + nl + 1;
      to = from;
    }
    if (end === size) return size;
  } finally {
    await fh.close();
  }
  await truncate(path, end);
  return end;
}
