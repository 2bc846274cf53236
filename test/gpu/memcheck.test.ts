import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { REPO_ROOT } from '@detq/core';
import { cocoImageNames, COCO_IMAGES, TORCHSCRIPT } from './gpu-fixtures';

// compute-sanitizer over a short `detq label` run on the torch engine, JPEGs decoded by nvJPEG: memcheck
// checks every kernel launch (ours, nvJPEG's, LibTorch's, cuDNN's) for out-of-bounds and misaligned
// accesses and CUDA API errors; racecheck checks shared-memory hazards. No leak check: LibTorch's caching
// allocator keeps its blocks until the process exits, by design.
test.each(['memcheck', 'racecheck'])('compute-sanitizer %s reports 0 errors on a short labelling run through nvJPEG', async (tool) => {
  const out = await mkdtemp(join(tmpdir(), `detq-${tool}-`));
  const list = join(out, 'inputs.txt');
  await writeFile(list, cocoImageNames(6).map((n) => join(COCO_IMAGES, n)).join('\n'));
  try {
    const r = spawnSync(
      'compute-sanitizer',
      ['--tool', tool, process.execPath, join(REPO_ROOT, 'apps/cli/bin/detq.js'), 'label', list,
        '--out', join(out, 'labels'), '--engine', 'torch', '--model', TORCHSCRIPT, '--batch', '3'],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, DETQ_DEBUG: '1' } },
    );
    const output = `${r.stdout}\n${r.stderr}`;
    console.log(output.split('\n').filter((l) => /ERROR SUMMARY|RACECHECK SUMMARY|labelled|nvJPEG/.test(l)).join('\n'));
    expect(r.error).toBeUndefined();
    expect(output).toMatch(/labelled 6\/6 images/);
    expect(output).toMatch(/nvJPEG (hardware|gpu-hybrid) decoder ready/);
    expect(output).toMatch(/(ERROR|RACECHECK) SUMMARY: 0 (errors|hazards)/);
    expect(output).not.toMatch(/(ERROR|RACECHECK) SUMMARY: [1-9]/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}, 900_000);
