import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCalibrationCache, writeCalibrationCache, type CalibrationKey } from '@detq/inference';

const key: CalibrationKey = { modelSha256: 'b'.repeat(64), height: 640, width: 640, algorithm: 'minmax' };
const raw = Buffer.from('TRT-100600-MinMaxCalibration\nimages: 3c010a14\n');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'detq-calib-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('calibration cache key', () => {
  it('gives back the raw cache for the same model, input size and algorithm; nothing when absent', async () => {
    const path = join(dir, 'c.cache');
    expect(await readCalibrationCache(path, key)).toBeUndefined();
    await writeCalibrationCache(path, key, raw);
    expect((await readFile(path, 'utf8')).split('\n')[0]).toBe(`detq-calibration-cache v1 model=${'b'.repeat(64)} input=640x640 algorithm=minmax`);
    expect(Buffer.compare((await readCalibrationCache(path, key))!, raw)).toBe(0);
  });

  it('refuses a cache made for another model, input size or algorithm, saying what it was made for', async () => {
    const path = join(dir, 'd.cache');
    await writeCalibrationCache(path, key, raw);
    await expect(readCalibrationCache(path, { ...key, modelSha256: 'c'.repeat(64) })).rejects.toMatchObject({
      exit: 'USAGE',
      message: `calibration cache ${path} was made for model=${'b'.repeat(64)} input=640x640 algorithm=minmax, not for model=${'c'.repeat(64)} input=640x640 algorithm=minmax: delete it or give another --calib-cache, so calibration runs again for this model, input size and algorithm`,
    });
    await expect(readCalibrationCache(path, { ...key, height: 320, width: 320 })).rejects.toThrow(/not for model=b+ input=320x320/);
    await expect(readCalibrationCache(path, { ...key, algorithm: 'entropy' })).rejects.toThrow(/algorithm=minmax, not for .* algorithm=entropy/);
  });

  it('refuses a bare TensorRT cache (no detq key)', async () => {
    const path = join(dir, 'bare.cache');
    await writeFile(path, raw);
    await expect(readCalibrationCache(path, key)).rejects.toThrow(/was made for no detq key \(not a detq calibration cache\)/);
  });
});
