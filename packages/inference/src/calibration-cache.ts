import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { FatalError } from '@detq/core';

/**
 * INT8 calibration caches are only valid for the model, input size and algorithm that produced them;
 * TensorRT's own cache records none of that, so detq prefixes it with a key line and refuses a cache
 * made for anything else rather than quantising with the wrong scales.
 */
export interface CalibrationKey {
  modelSha256: string;
  /** Calibration input, HxW. */
  height: number;
  width: number;
  algorithm: 'minmax' | 'entropy';
}

const PREFIX = 'detq-calibration-cache v1 ';

export function calibrationKeyLine(k: CalibrationKey): string {
  return `${PREFIX}model=${k.modelSha256} input=${k.height}x${k.width} algorithm=${k.algorithm}\n`;
}

/**
 * TensorRT's raw cache from a detq calibration cache file, or undefined when there is none yet. A
 * cache with another key (or none) is refused with a message saying what it was made for.
 */
export async function readCalibrationCache(path: string, key: CalibrationKey): Promise<Buffer | undefined> {
  const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new FatalError('USAGE', `cannot read calibration cache ${path}: ${err.message}`, { cause: err });
  });
  if (!bytes) return undefined;
  const end = bytes.indexOf(0x0a);
  const line = end >= 0 ? bytes.toString('utf8', 0, end + 1) : '';
  const expected = calibrationKeyLine(key);
  if (line !== expected) {
    const made = line.startsWith(PREFIX) ? line.slice(PREFIX.length).trim() : 'no detq key (not a detq calibration cache)';
    throw new FatalError(
      'USAGE',
      `calibration cache ${path} was made for ${made}, not for ${expected.slice(PREFIX.length).trim()}: ` +
        'delete it or give another --calib-cache, so calibration runs again for this model, input size and algorithm',
    );
  }
  return bytes.subarray(end + 1);
}

/** Writes TensorRT's raw cache under the key line, through a temp file renamed into place. */
export async function writeCalibrationCache(path: string, key: CalibrationKey, raw: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, Buffer.concat([Buffer.from(calibrationKeyLine(key), 'utf8'), raw]));
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new FatalError('OUTPUT_FAILED', `cannot write calibration cache ${path}: ${(err as Error).message}`, { cause: err });
  }
}
