import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { REPO_ROOT } from '@detq/core';
import { addonPath } from '@detq/native';
import { cocoImageNames, COCO_IMAGES, TORCHSCRIPT } from './gpu-fixtures';

// compute-sanitizer memcheck over a short `detq label` run on the torch engine, JPEGs decoded by nvJPEG:
// every kernel launch (ours, nvJPEG's, LibTorch's, cuDNN's) is checked for out-of-bounds and misaligned
// accesses and CUDA API errors. No leak check: LibTorch's caching allocator keeps its blocks until the
// process exits, by design.
test('compute-sanitizer memcheck reports 0 errors on a short labelling run through nvJPEG', async () => {
  const out = await mkdtemp(join(tmpdir(), 'detq-memcheck-'));
  const list = join(out, 'inputs.txt');
  await writeFile(list, cocoImageNames(6).map((n) => join(COCO_IMAGES, n)).join('\n'));
  try {
    const r = spawnSync(
      'compute-sanitizer',
      ['--tool', 'memcheck', process.execPath, join(REPO_ROOT, 'apps/cli/bin/detq.js'), 'label', list,
        '--out', join(out, 'labels'), '--engine', 'torch', '--model', TORCHSCRIPT, '--batch', '3'],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, DETQ_DEBUG: '1' } },
    );
    const output = `${r.stdout}\n${r.stderr}`;
    console.log(output.split('\n').filter((l) => /ERROR SUMMARY|labelled|nvJPEG/.test(l)).join('\n'));
    expect(r.error).toBeUndefined();
    expect(output).toMatch(/labelled 6\/6 images/);
    expect(output).toMatch(/nvJPEG (hardware|gpu-hybrid).* decoder ready/);
    expect(output).toMatch(/ERROR SUMMARY: 0 errors/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}, 900_000);

// racecheck (shared-memory hazards) aborts inside a whole LibTorch/cuDNN run ("failed to track a kernel
// launch"), and with a kernel filter the skipped cuDNN kernels leave garbage behind: it runs over detq's
// own kernels fed by nvJPEG instead (kernels-run.mjs: decode, oriented letterbox, decode + NMS).
test('compute-sanitizer racecheck reports 0 hazards on nvJPEG decode + letterbox + NMS', () => {
  const r = spawnSync(
    'compute-sanitizer',
    ['--tool', 'racecheck', process.execPath, join(REPO_ROOT, 'test/gpu/kernels-run.mjs'), addonPath, ...cocoImageNames(6).map((n) => join(COCO_IMAGES, n))],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, DETQ_DEBUG: '1' } },
  );
  const output = `${r.stdout}\n${r.stderr}`;
  console.log(output.split('\n').filter((l) => /SUMMARY|kernels run|nvJPEG/.test(l)).join('\n'));
  expect(output).toMatch(/kernels run: 6 JPEGs decoded/);
  expect(output).toMatch(/RACECHECK SUMMARY: 0 hazards/);
}, 900_000);
