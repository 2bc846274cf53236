import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT_CODES } from '@detq/core';
import { main } from '@detq/cli';
import { COCO_IMAGES, cocoImageNames, MODEL_DYN, tempDir } from '../helpers/fixtures';

// What `detq build-engine` refuses before any GPU or TensorRT is involved (none is installed here).
const detq = (...args: string[]) => main(['node', 'detq', ...args]);

function captureStderr() {
  const chunks: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (chunks.push(String(c)), true));
  return () => chunks.join('');
}

describe('detq build-engine flags', () => {
  afterEach(() => vi.restoreAllMocks());

  it('names each bad flag and exits 2', async () => {
    let err = captureStderr();
    expect(await detq('build-engine', MODEL_DYN, '--fp16', '--int8')).toBe(EXIT_CODES.USAGE);
    expect(err()).toMatch(/--int8: choose one of --fp16 and --int8/);
    err = captureStderr();
    expect(await detq('build-engine', MODEL_DYN, '--calib-algo', 'percentile', '--contexts', '0', '--min', '1x4x640x640')).toBe(EXIT_CODES.USAGE);
    expect(err()).toMatch(/--calib-algo: .*"minmax"\|"entropy"/);
    expect(err()).toMatch(/--contexts: .*>=1/);
    expect(err()).toMatch(/--min: must be NxCxHxW with C=3/);
    err = captureStderr();
    expect(await detq('build-engine', MODEL_DYN, '--labels', '/tmp')).toBe(EXIT_CODES.USAGE);
    expect(err()).toMatch(/--labels: needs --verify <images>/);
  });

  it('refuses a calibration set smaller than one batch with both numbers (exit 2)', async () => {
    const calib = join(await tempDir('detq-calib-set-'), 'images');
    await mkdir(calib);
    for (const name of cocoImageNames(3)) await copyFile(join(COCO_IMAGES, name), join(calib, name));
    const err = captureStderr();
    expect(await detq('build-engine', MODEL_DYN, '--int8', '--calib', calib, '--calib-batch', '8', '--opt', '8x3x320x320', '--min', '1x3x320x320', '--max', '8x3x320x320')).toBe(
      EXIT_CODES.USAGE,
    );
    expect(err()).toMatch(/the calibration set has 3 image\(s\), fewer than one batch of 8: give more images or a smaller --calib-batch/);
  });
});
